"""Compiled (numba) kernels of the timetable problem: batch cost, state, local search.

Covers: the batch evaluator (the official validator's rules on genomes, any genome),
the incremental search state (who is where, per-constraint counters), its repair
(room clashes and repeated course periods), the randomised construction, the simulated
annealing local search with delta evaluation over six neighbourhoods (a lecture to a random
slot, swapping when taken; and, each with its own probability, a course room change, a
Kempe-chain swap, a min-working-days move and a curriculum compactness move), and the
Kempe-chain / move / swap mutation.

Does not cover: the Python-facing problem (`islands.timetable.problem`) or the readable
reference evaluator (`islands.timetable.validate`), which tests compare with this one.

Layout: a genome holds one int32 slot per lecture, `slot = period * R + room`.
`data` is the tuple built by `kernel_data()`; index names are the constants below.
Search state invariant: no two lectures share a slot and no course has two lectures in
one period, so Lectures and RoomOccupancy stay 0 and only Conflicts and Availability
can be violated during the search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

if TYPE_CHECKING:
    from islands.timetable.model import Instance

# dims array
D_ROOMS, D_PERIODS, D_DAYS, D_PPD, D_COURSES, D_CURRICULA, D_LECTURES = range(7)
MWD_WEIGHT = 5
COMPACT_WEIGHT = 2
# cost component indices of the search state
K_CONFLICTS, K_AVAIL, K_CAPACITY, K_MWD, K_COMPACT, K_STABILITY, K_MOVED = range(7)
# Random lectures a targeted move draws before it gives up on finding its kind.
PICK_TRIES = 20


def kernel_data(
    instance: Instance, previous_course: np.ndarray | None = None,
    previous_weight: np.ndarray | None = None,
) -> tuple:
    """The tuple of arrays the kernels unpack (order fixed here).

    `previous_course` [slots]: the course that held each slot in an earlier timetable
    (-1 none); `previous_weight` [courses]: what a lecture of that course costs when it
    sits in a slot its course did not hold then (0: no earlier timetable, or no cost).
    """
    dims = np.array(
        [
            instance.n_rooms,
            instance.n_periods,
            instance.days,
            instance.periods_per_day,
            instance.n_courses,
            instance.n_curricula,
            instance.n_lectures,
        ],
        dtype=np.int64,
    )
    i32 = np.int32
    periods = np.arange(instance.n_periods, dtype=i32)
    slots = np.arange(instance.n_periods * instance.n_rooms, dtype=i32)
    return (
        dims,
        instance.lecture_course.astype(i32),
        instance.course_first_lecture.astype(i32),
        instance.course_lectures.astype(i32),
        instance.course_min_days.astype(i32),
        instance.course_students.astype(i32),
        instance.room_capacity.astype(i32),
        instance.available.reshape(-1).astype(i32),
        instance.conflict_offsets.astype(i32),
        instance.conflict_courses.astype(i32),
        instance.course_curricula_offsets.astype(i32),
        instance.course_curricula.astype(i32),
        instance.curriculum_offsets.astype(i32),
        instance.curriculum_members.astype(i32),
        # Lookup tables so the search loop does no integer division.
        (periods % instance.periods_per_day).astype(i32),
        (slots // instance.n_rooms).astype(i32),
        (slots % instance.n_rooms).astype(i32),
        # The stability cost of a warm start (kernel_data's docstring).
        np.full(len(slots), -1, i32) if previous_course is None else previous_course.astype(i32),
        np.zeros(instance.n_courses, i32) if previous_weight is None else previous_weight.astype(i32),
    )


@njit(cache=True, inline="always")
def _over(students, capacity, c, r):
    extra = students[c] - capacity[r]
    return extra if extra > 0 else 0


@njit(cache=True)
def evaluate_one(genome, data, out):
    """Validator semantics on one genome; out[8] = lectures, conflicts, availability,
    room occupancy, capacity, min working days (x5), compactness (x2), stability."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    ppd = dims[D_PPD]
    C = dims[D_COURSES]
    Q = dims[D_CURRICULA]
    D = dims[D_DAYS]
    table = np.full(C * P, -1, np.int32)
    present_count = np.zeros(C, np.int64)
    for lecture in range(genome.shape[0]):
        c = lecture_course[lecture]
        s = genome[lecture]
        if s < 0 or s >= P * R:
            continue  # cannot come from the operators; counts as a missing lecture
        p = s // R
        if table[c * P + p] < 0:
            table[c * P + p] = s % R
            present_count[c] += 1
    lectures = 0
    for c in range(C):
        diff = present_count[c] - lectures_of[c]
        lectures += diff if diff > 0 else -diff
    conflicts = 0
    avail = 0
    cap = 0
    mwd = 0
    stab = 0
    room_load = np.zeros(R * P, np.int32)
    curr_load = np.zeros(Q * P, np.int32)
    room_seen = np.full(R, -1, np.int64)
    for c in range(C):
        used_rooms = 0
        used_days = 0
        for d in range(D):
            day_used = False
            for k in range(ppd):
                p = d * ppd + k
                r = table[c * P + p]
                if r < 0:
                    continue
                day_used = True
                for j in range(conf_off[c], conf_off[c + 1]):
                    other = conf_list[j]
                    if other > c and table[other * P + p] >= 0:
                        conflicts += 1
                if available[c * P + p] == 0:
                    avail += 1
                room_load[r * P + p] += 1
                cap += _over(students, capacity, c, r)
                if room_seen[r] != c:
                    room_seen[r] = c
                    used_rooms += 1
                for j in range(ccur_off[c], ccur_off[c + 1]):
                    curr_load[ccur_list[j] * P + p] += 1
            if day_used:
                used_days += 1
        if used_days < min_days[c]:
            mwd += min_days[c] - used_days
        if used_rooms > 1:
            stab += used_rooms - 1
    occupancy = 0
    for i in range(R * P):
        if room_load[i] > 1:
            occupancy += room_load[i] - 1
    compact = 0
    for q in range(Q):
        for p in range(P):
            compact += _contrib(curr_load, q * P, p, ppd, period_pos)
    out[0] = lectures
    out[1] = conflicts
    out[2] = avail
    out[3] = occupancy
    out[4] = cap
    out[5] = MWD_WEIGHT * mwd
    out[6] = COMPACT_WEIGHT * compact
    out[7] = stab


@njit(cache=True)
def evaluate_batch(genomes, data, out):
    for i in range(genomes.shape[0]):
        evaluate_one(genomes[i], data, out[i])


@njit(cache=True, inline="always")
def _contrib(load, base, p, ppd, period_pos):
    """Isolated-lecture count of one curriculum at period p (0 when not isolated).
    `period_pos[p]` is p's position in its day (a table: no division in the hot loop)."""
    n = load[base + p]
    if n == 0:
        return 0
    k = period_pos[p]
    if k > 0 and load[base + p - 1] > 0:
        return 0
    if k < ppd - 1 and load[base + p + 1] > 0:
        return 0
    return n


@njit(cache=True, inline="always")
def _range_cost(load, base, lo, hi, ppd, period_pos):
    total = 0
    for x in range(lo, hi + 1):
        total += _contrib(load, base, x, ppd, period_pos)
    return total


@njit(cache=True, inline="always")
def _window(p, ppd, period_pos):
    start = p - period_pos[p]
    lo = p - 1 if p - 1 >= start else start
    hi = p + 1 if p + 1 < start + ppd else start + ppd - 1
    return lo, hi


def new_state(dims):
    """Arrays of one search state (allocated per genome batch, reused)."""
    R, P, D, ppd, C, Q, L = (int(x) for x in dims[:7])
    return (
        np.full(P * R, -1, np.int32),  # slot_lecture
        np.zeros(L, np.int32),  # lecture_slot
        np.full(C * P, -1, np.int32),  # course_room_at
        np.zeros(C * P, np.int32),  # nb_present
        np.zeros(C * D, np.int32),  # day_count
        np.zeros(C, np.int32),  # days_used
        np.zeros(C * R, np.int32),  # room_count
        np.zeros(C, np.int32),  # rooms_used
        np.zeros(Q * P, np.int32),  # curr_load
        np.zeros(7, np.int64),  # cost components
    )


def state_nbytes(dims) -> int:
    R, P, D, ppd, C, Q, L = (int(x) for x in dims[:7])
    return 4 * (P * R + 2 * L + 2 * C * P + C * D + C * R + 2 * C + Q * P) + 56


@njit(cache=True, inline="always")
def _insert(lecture, s, data, state):
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    ppd = dims[D_PPD]
    D = dims[D_DAYS]
    c = lecture_course[lecture]
    p = s // R
    r = s % R
    lecture_slot[lecture] = s
    cost[K_CONFLICTS] += nb_present[c * P + p]
    for j in range(conf_off[c], conf_off[c + 1]):
        nb_present[conf_list[j] * P + p] += 1
    if available[c * P + p] == 0:
        cost[K_AVAIL] += 1
    cost[K_CAPACITY] += _over(students, capacity, c, r)
    if prev_weight[c] > 0 and prev_course[s] != c:
        cost[K_MOVED] += prev_weight[c]
    course_room_at[c * P + p] = r
    d = p // ppd
    if day_count[c * D + d] == 0:
        if days_used[c] < min_days[c]:
            cost[K_MWD] -= MWD_WEIGHT
        days_used[c] += 1
    day_count[c * D + d] += 1
    if room_count[c * R + r] == 0:
        if rooms_used[c] >= 1:
            cost[K_STABILITY] += 1
        rooms_used[c] += 1
    room_count[c * R + r] += 1
    lo, hi = _window(p, ppd, period_pos)
    for j in range(ccur_off[c], ccur_off[c + 1]):
        base = ccur_list[j] * P
        before = _range_cost(curr_load, base, lo, hi, ppd, period_pos)
        curr_load[base + p] += 1
        cost[K_COMPACT] += COMPACT_WEIGHT * (_range_cost(curr_load, base, lo, hi, ppd, period_pos) - before)


@njit(cache=True, inline="always")
def _remove(lecture, data, state):
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    ppd = dims[D_PPD]
    D = dims[D_DAYS]
    c = lecture_course[lecture]
    s = lecture_slot[lecture]
    p = s // R
    r = s % R
    cost[K_CONFLICTS] -= nb_present[c * P + p]
    for j in range(conf_off[c], conf_off[c + 1]):
        nb_present[conf_list[j] * P + p] -= 1
    if available[c * P + p] == 0:
        cost[K_AVAIL] -= 1
    cost[K_CAPACITY] -= _over(students, capacity, c, r)
    if prev_weight[c] > 0 and prev_course[s] != c:
        cost[K_MOVED] -= prev_weight[c]
    course_room_at[c * P + p] = -1
    d = p // ppd
    day_count[c * D + d] -= 1
    if day_count[c * D + d] == 0:
        days_used[c] -= 1
        if days_used[c] < min_days[c]:
            cost[K_MWD] += MWD_WEIGHT
    room_count[c * R + r] -= 1
    if room_count[c * R + r] == 0:
        rooms_used[c] -= 1
        if rooms_used[c] >= 1:
            cost[K_STABILITY] -= 1
    lo, hi = _window(p, ppd, period_pos)
    for j in range(ccur_off[c], ccur_off[c + 1]):
        base = ccur_list[j] * P
        before = _range_cost(curr_load, base, lo, hi, ppd, period_pos)
        curr_load[base + p] -= 1
        cost[K_COMPACT] += COMPACT_WEIGHT * (_range_cost(curr_load, base, lo, hi, ppd, period_pos) - before)


@njit(cache=True, inline="always")
def _isolated_change_remove(load, base, p, ppd, period_pos):
    """Change of a curriculum's isolated-lecture count when load[p] drops by one."""
    k = period_pos[p]
    a = load[base + p - 1] if k > 0 else 0
    b = load[base + p]
    c = load[base + p + 1] if k < ppd - 1 else 0
    change = -1 if (a == 0 and c == 0) else 0
    if b == 1:
        # p empties: a neighbour whose other side is empty becomes isolated.
        if a > 0 and (k < 2 or load[base + p - 2] == 0):
            change += a
        if c > 0 and (k > ppd - 3 or load[base + p + 2] == 0):
            change += c
    return change


@njit(cache=True, inline="always")
def _isolated_change_add(load, base, p, ppd, period_pos):
    """Change of a curriculum's isolated-lecture count when load[p] grows by one."""
    k = period_pos[p]
    a = load[base + p - 1] if k > 0 else 0
    b = load[base + p]
    c = load[base + p + 1] if k < ppd - 1 else 0
    change = 1 if (a == 0 and c == 0) else 0
    if b == 0:
        # p fills: an isolated neighbour stops being isolated.
        if a > 0 and (k < 2 or load[base + p - 2] == 0):
            change -= a
        if c > 0 and (k > ppd - 3 or load[base + p + 2] == 0):
            change -= c
    return change


@njit(cache=True, inline="always")
def _delta_move(c, p1, r1, p2, r2, partner, R, P, ppd, D, students, capacity, available,
                min_days, ccur_off, ccur_list, period_pos, nb_present, day_count, days_used,
                room_count, rooms_used, curr_load, prev_course, prev_weight):
    """(hard, soft) change of moving a lecture of course c from (p1, r1) to (p2, r2), a
    free slot, without changing the state. The course must not already be in p2 (unless
    p2 is p1). Curricula shared with course `partner` (-1: none) are left out: in a swap
    of the two courses' periods their load does not change. Arrays are passed one by one
    (not as the `data` / `state` tuples): this is the hot loop, and unpacking tuples of
    arrays costs reference counting on every call.
    """
    hard = 0
    soft = 0
    if prev_weight[c] > 0:
        soft += prev_weight[c] * ((prev_course[p2 * R + r2] != c) - (prev_course[p1 * R + r1] != c))
    if r1 != r2:
        soft += _over(students, capacity, c, r2) - _over(students, capacity, c, r1)
        rooms = rooms_used[c]
        after = rooms
        if room_count[c * R + r1] == 1:
            after -= 1
        if room_count[c * R + r2] == 0:
            after += 1
        soft += (after - 1 if after > 1 else 0) - (rooms - 1 if rooms > 1 else 0)
    if p1 != p2:
        hard += nb_present[c * P + p2] - nb_present[c * P + p1]
        hard += (1 - available[c * P + p2]) - (1 - available[c * P + p1])
        start1 = p1 - period_pos[p1]
        start2 = p2 - period_pos[p2]
        if start1 != start2:
            d1 = start1 // ppd
            d2 = start2 // ppd
            days = days_used[c]
            after = days
            if day_count[c * D + d1] == 1:
                after -= 1
            if day_count[c * D + d2] == 0:
                after += 1
            need = min_days[c]
            soft += MWD_WEIGHT * ((need - after if need > after else 0) - (need - days if need > days else 0))
        compact = 0
        for j in range(ccur_off[c], ccur_off[c + 1]):
            q = ccur_list[j]
            if partner >= 0:
                shared = False
                for k in range(ccur_off[partner], ccur_off[partner + 1]):
                    if ccur_list[k] == q:
                        shared = True
                if shared:
                    continue
            base = q * P
            # Closed forms of the change (no window sums): take one lecture out of p1,
            # then, on that load, put one into p2.
            compact += _isolated_change_remove(curr_load, base, p1, ppd, period_pos)
            curr_load[base + p1] -= 1
            compact += _isolated_change_add(curr_load, base, p2, ppd, period_pos)
            curr_load[base + p1] += 1
        soft += COMPACT_WEIGHT * compact
    return hard, soft


@njit(cache=True, inline="always")
def _adjacent(c, other, conf_off, conf_list):
    """Whether courses c and other conflict (binary search in c's sorted list)."""
    lo = conf_off[c]
    hi = conf_off[c + 1]
    while lo < hi:
        mid = (lo + hi) // 2
        if conf_list[mid] < other:
            lo = mid + 1
        else:
            hi = mid
    return lo < conf_off[c + 1] and conf_list[lo] == other


@njit(cache=True, inline="always")
def _delta_swap(c, s1, c2, s2, R, P, ppd, D, slot_period, slot_room, conf_off, conf_list,
                students, capacity, available, min_days, ccur_off, ccur_list, period_pos,
                nb_present, day_count, days_used, room_count, rooms_used, curr_load,
                prev_course, prev_weight):
    """(hard, soft) change of swapping the slots s1 (course c) and s2 (course c2 != c),
    neither course already in the other's period."""
    p1 = slot_period[s1]
    p2 = slot_period[s2]
    h1, f1 = _delta_move(c, p1, slot_room[s1], p2, slot_room[s2], c2, R, P, ppd, D,
                         students, capacity, available, min_days, ccur_off, ccur_list,
                         period_pos, nb_present, day_count, days_used, room_count,
                         rooms_used, curr_load, prev_course, prev_weight)
    h2, f2 = _delta_move(c2, p2, slot_room[s2], p1, slot_room[s1], c, R, P, ppd, D,
                         students, capacity, available, min_days, ccur_off, ccur_list,
                         period_pos, nb_present, day_count, days_used, room_count,
                         rooms_used, curr_load, prev_course, prev_weight)
    hard = h1 + h2
    if p1 != p2 and _adjacent(c, c2, conf_off, conf_list):
        hard -= 2  # each counted the other as present in its new period
    return hard, f1 + f2


@njit(cache=True, inline="always")
def _hard(cost):
    return cost[K_CONFLICTS] + cost[K_AVAIL]


@njit(cache=True, inline="always")
def _soft(cost):
    return cost[K_CAPACITY] + cost[K_MWD] + cost[K_COMPACT] + cost[K_STABILITY] + cost[K_MOVED]


@njit(cache=True)
def _clear_state(data, state):
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    slot_lecture[:] = -1
    course_room_at[:] = -1
    nb_present[:] = 0
    day_count[:] = 0
    days_used[:] = 0
    room_count[:] = 0
    rooms_used[:] = 0
    curr_load[:] = 0
    cost[:] = 0
    total = 0
    for c in range(dims[D_COURSES]):
        total += min_days[c]
    cost[K_MWD] = MWD_WEIGHT * total


@njit(cache=True)
def _best_free_slot(lecture, data, state, spread_days):
    """The free slot (course not yet in that period) of least added cost, random ties;
    -1 when there is none."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    ppd = dims[D_PPD]
    D = dims[D_DAYS]
    c = lecture_course[lecture]
    best = -1
    best_score = 1 << 60
    ties = 0
    for p in range(P):
        if course_room_at[c * P + p] >= 0:
            continue
        base_score = 1000 * (nb_present[c * P + p] + 1 - available[c * P + p])
        if spread_days and day_count[c * D + p // ppd] > 0:
            base_score += MWD_WEIGHT
        for r in range(R):
            if slot_lecture[p * R + r] >= 0:
                continue
            score = base_score + _over(students, capacity, c, r)
            if room_count[c * R + r] == 0 and rooms_used[c] > 0:
                score += 1
            if score < best_score:
                best_score = score
                best = p * R + r
                ties = 1
            elif score == best_score:
                ties += 1
                if np.random.random() * ties < 1.0:
                    best = p * R + r
    return best


@njit(cache=True)
def load_state(genome, data, state):
    """Fill `state` from a genome, repairing clashes: a lecture whose slot is taken or
    whose course already sits in that period goes to its best free slot. Returns False
    when some lecture finds no free slot at all (the instance is too full)."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    L = dims[D_LECTURES]
    _clear_state(data, state)
    pending = np.empty(L, np.int64)
    n_pending = 0
    for lecture in range(L):
        s = genome[lecture]
        c = lecture_course[lecture]
        if s < 0 or s >= P * R or slot_lecture[s] >= 0 or course_room_at[c * P + s // R] >= 0:
            pending[n_pending] = lecture
            n_pending += 1
            continue
        _insert(lecture, s, data, state)
        slot_lecture[s] = lecture
    for i in range(n_pending):
        lecture = pending[i]
        s = _best_free_slot(lecture, data, state, True)
        if s < 0:
            return False
        _insert(lecture, s, data, state)
        slot_lecture[s] = lecture
    return True


@njit(cache=True)
def construct(genome, seed, data, state):
    """Randomised greedy construction: hardest courses first (few free periods, many
    conflicts, many lectures), each lecture to its cheapest free slot."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    np.random.seed(seed)
    C = dims[D_COURSES]
    P = dims[D_PERIODS]
    R = dims[D_ROOMS]
    _clear_state(data, state)
    key = np.empty(C, np.float64)
    for c in range(C):
        free = 0
        for p in range(P):
            free += available[c * P + p]
        degree = conf_off[c + 1] - conf_off[c]
        key[c] = (free - lectures_of[c]) - 0.5 * degree + 3.0 * np.random.random()
    order = np.argsort(key)
    ok = True
    for i in range(C):
        c = order[i]
        for lecture in range(first_lecture[c], first_lecture[c + 1]):
            s = _best_free_slot(lecture, data, state, True)
            if s < 0:
                ok = False
                s = np.random.randint(0, P * R)
                genome[lecture] = s
                continue
            _insert(lecture, s, data, state)
            slot_lecture[s] = lecture
            genome[lecture] = s
    return ok


@njit(cache=True)
def moved_cost(genome, data):
    """The stability cost of a genome: each lecture in a slot its course did not hold in
    the earlier timetable costs its course's weight (`kernel_data`)."""
    lecture_course = data[1]
    prev_course = data[17]
    prev_weight = data[18]
    total = 0
    for lecture in range(len(genome)):
        c = lecture_course[lecture]
        if prev_weight[c] > 0 and prev_course[genome[lecture]] != c:
            total += prev_weight[c]
    return total


@njit(cache=True)
def _mwd_pick(L, R, D, ppd, lecture_course, first_lecture, min_days, lecture_slot,
              slot_lecture, slot_period, slot_room, day_count, days_used):
    """Min-working-days move: a lecture of a course that uses fewer days than its minimum
    (one sharing its day with another lecture of the course) to a random period of a day
    the course does not use, in its own room when that is free there, else in a random
    room (a swap when taken). (lecture, slot), or (-1, -1) when none was found."""
    c = -1
    for _ in range(PICK_TRIES):
        x = lecture_course[np.random.randint(0, L)]
        if days_used[x] < min_days[x]:
            c = x
            break
    if c < 0 or days_used[c] >= D:
        return -1, -1
    first = first_lecture[c]
    n = first_lecture[c + 1] - first
    start = np.random.randint(0, n)
    lecture = -1
    for i in range(n):
        ly = first + (start + i) % n
        if day_count[c * D + slot_period[lecture_slot[ly]] // ppd] >= 2:
            lecture = ly
            break
    if lecture < 0:
        return -1, -1  # one lecture a day already: no day to gain
    k = np.random.randint(0, D - days_used[c])
    d2 = 0
    for d in range(D):
        if day_count[c * D + d] == 0:
            if k == 0:
                d2 = d
                break
            k -= 1
    p2 = d2 * ppd + np.random.randint(0, ppd)
    r2 = slot_room[lecture_slot[lecture]]
    if slot_lecture[p2 * R + r2] >= 0:
        r2 = np.random.randint(0, R)
    return lecture, p2 * R + r2


@njit(cache=True)
def _compact_pick(L, R, P, ppd, lecture_course, ccur_off, ccur_list, lecture_slot,
                  slot_lecture, slot_period, slot_room, period_pos, course_room_at, curr_load):
    """Curriculum compactness move: a lecture isolated in one of its curricula to a period
    next to another lecture of that curriculum (same day, a period where the curriculum
    has none and the course is not), in its own room when free, else in a random room (a
    swap when taken). (lecture, slot), or (-1, -1) when none was found."""
    lecture = -1
    c = 0
    base = 0
    p1 = 0
    for _ in range(PICK_TRIES):
        x = np.random.randint(0, L)
        cx = lecture_course[x]
        nq = ccur_off[cx + 1] - ccur_off[cx]
        if nq == 0:
            continue
        b = ccur_list[ccur_off[cx] + np.random.randint(0, nq)] * P
        px = slot_period[lecture_slot[x]]
        k = period_pos[px]
        if (k > 0 and curr_load[b + px - 1] > 0) or (k < ppd - 1 and curr_load[b + px + 1] > 0):
            continue
        lecture = x
        c = cx
        base = b
        p1 = px
        break
    if lecture < 0:
        return -1, -1
    target = -1
    seen = 0
    for x in range(P):
        if x == p1 or curr_load[base + x] == 0:
            continue
        k = period_pos[x]
        if k > 0:
            y = x - 1
            if y != p1 and curr_load[base + y] == 0 and course_room_at[c * P + y] < 0:
                seen += 1
                if np.random.random() * seen < 1.0:
                    target = y
        if k < ppd - 1:
            y = x + 1
            if y != p1 and curr_load[base + y] == 0 and course_room_at[c * P + y] < 0:
                seen += 1
                if np.random.random() * seen < 1.0:
                    target = y
    if target < 0:
        return -1, -1
    r2 = slot_room[lecture_slot[lecture]]
    if slot_lecture[target * R + r2] >= 0:
        r2 = np.random.randint(0, R)
    return lecture, target * R + r2


@njit(cache=True)
def _course_room_change(data, state, moved_lecture, moved_slot, delta):
    """Course room change: every lecture of a random course into one random room, each in
    its own period; a lecture already in that room and period swaps into the course's old
    room. Applied to the state step by step, each step scored by `_delta_move` /
    `_delta_swap` on the state before it; delta[:] = summed (hard, soft) change. Returns
    how many lectures moved (`moved_lecture[i]` came from `moved_slot[i]`), 0 when the
    course already sits in that room alone (state untouched)."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    ppd = dims[D_PPD]
    D = dims[D_DAYS]
    c = lecture_course[np.random.randint(0, dims[D_LECTURES])]
    r = np.random.randint(0, R)
    if rooms_used[c] == 1 and room_count[c * R + r] > 0:
        return 0
    n = 0
    hard = 0
    soft = 0
    for ly in range(first_lecture[c], first_lecture[c + 1]):
        s1 = lecture_slot[ly]
        r1 = slot_room[s1]
        if r1 == r:
            continue
        p = slot_period[s1]
        s2 = p * R + r
        other = slot_lecture[s2]
        if other < 0:
            h, f = _delta_move(c, p, r1, p, r, -1, R, P, ppd, D, students, capacity,
                               available, min_days, ccur_off, ccur_list, period_pos,
                               nb_present, day_count, days_used, room_count, rooms_used,
                               curr_load, prev_course, prev_weight)
            _remove(ly, data, state)
            _insert(ly, s2, data, state)
            slot_lecture[s1] = -1
        else:
            h, f = _delta_swap(c, s1, lecture_course[other], s2, R, P, ppd, D, slot_period,
                               slot_room, conf_off, conf_list, students, capacity, available,
                               min_days, ccur_off, ccur_list, period_pos, nb_present,
                               day_count, days_used, room_count, rooms_used, curr_load,
                               prev_course, prev_weight)
            _remove(ly, data, state)
            _remove(other, data, state)
            _insert(ly, s2, data, state)
            _insert(other, s1, data, state)
            slot_lecture[s1] = other
            moved_lecture[n] = other
            moved_slot[n] = s2
            n += 1
        slot_lecture[s2] = ly
        moved_lecture[n] = ly
        moved_slot[n] = s1
        n += 1
        hard += h
        soft += f
    delta[0] = hard
    delta[1] = soft
    return n


@njit(cache=True)
def _kempe_move(data, state, chain, members, moved_lecture, moved_slot, delta):
    """Kempe-chain swap: a random lecture's period p1 and a random period p2; the chain is
    its course and, repeatedly, every course in conflict with a chain course that sits in
    p1 or p2. All the chain's lectures in p1 go to p2 and those in p2 to p1, each in its
    own room where that is free, else in the free room of least capacity excess (new rooms
    last). Conflicts between the chain and the rest cannot appear. Applied to the state
    through the incremental counters (`_remove` / `_insert`); delta[:] = (hard, soft)
    change. Returns how many lectures moved (`moved_lecture[i]` came from
    `moved_slot[i]`), 0 when p2 == p1 or the rooms are too few (state untouched)."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    lecture = np.random.randint(0, dims[D_LECTURES])
    c = lecture_course[lecture]
    p1 = slot_period[lecture_slot[lecture]]
    p2 = np.random.randint(0, P)
    if p2 == p1:
        return 0
    members[0] = c
    chain[c] = 1
    count = 1
    i = 0
    while i < count:
        x = members[i]
        i += 1
        for j in range(conf_off[x], conf_off[x + 1]):
            y = conf_list[j]
            if chain[y] == 0 and (course_room_at[y * P + p1] >= 0 or course_room_at[y * P + p2] >= 0):
                chain[y] = 1
                members[count] = y
                count += 1
    n = 0
    n1 = 0
    for i in range(count):
        y = members[i]
        chain[y] = 0
        ra = course_room_at[y * P + p1]
        if ra >= 0:
            moved_slot[n] = p1 * R + ra
            moved_lecture[n] = slot_lecture[p1 * R + ra]
            n += 1
            n1 += 1
        rb = course_room_at[y * P + p2]
        if rb >= 0:
            moved_slot[n] = p2 * R + rb
            moved_lecture[n] = slot_lecture[p2 * R + rb]
            n += 1
    busy1 = 0
    busy2 = 0
    for r in range(R):
        if slot_lecture[p1 * R + r] >= 0:
            busy1 += 1
        if slot_lecture[p2 * R + r] >= 0:
            busy2 += 1
    if n1 > R - (busy2 - (n - n1)) or n - n1 > R - (busy1 - n1):
        return 0
    hard0 = _hard(cost)
    soft0 = _soft(cost)
    for i in range(n):
        slot_lecture[moved_slot[i]] = -1
        _remove(moved_lecture[i], data, state)
    for i in range(n):
        ly = moved_lecture[i]
        s = moved_slot[i]
        target = (p2 if slot_period[s] == p1 else p1) * R + slot_room[s]
        if slot_lecture[target] < 0:
            _insert(ly, target, data, state)
            slot_lecture[target] = ly
        else:
            lecture_slot[ly] = -1  # placed below, in another room
    for i in range(n):
        ly = moved_lecture[i]
        if lecture_slot[ly] >= 0:
            continue
        cy = lecture_course[ly]
        pt = p2 if slot_period[moved_slot[i]] == p1 else p1
        best = -1
        best_score = 1 << 60
        for r in range(R):
            if slot_lecture[pt * R + r] >= 0:
                continue
            score = 2 * _over(students, capacity, cy, r) + (1 if room_count[cy * R + r] == 0 else 0)
            if score < best_score:
                best_score = score
                best = r
        _insert(ly, pt * R + best, data, state)
        slot_lecture[pt * R + best] = ly
    delta[0] = _hard(cost) - hard0
    delta[1] = _soft(cost) - soft0
    return n


@njit(cache=True)
def _undo(n, moved_lecture, moved_slot, data, state):
    """Put the n moved lectures back in their slots (a rejected compound move)."""
    slot_lecture = state[0]
    lecture_slot = state[1]
    for i in range(n):
        slot_lecture[lecture_slot[moved_lecture[i]]] = -1
        _remove(moved_lecture[i], data, state)
    for i in range(n):
        _insert(moved_lecture[i], moved_slot[i], data, state)
        slot_lecture[moved_slot[i]] = moved_lecture[i]


@njit(cache=True)
def anneal(genome, seed, n_moves, t_start, t_end, t_ref, hard_weight, big_weight, period_only,
           room_only, course_room_prob, kempe_ls_prob, mwd_prob, compact_prob, verify_every,
           data, state, best_genome, result):
    """Simulated annealing from `genome` (repaired first) with move and swap neighbours.

    Each iteration is, with the given probabilities, a course room change
    (`_course_room_change`), a Kempe-chain swap (`_kempe_move`), a min-working-days move
    (`_mwd_pick`) or a compactness move (`_compact_pick`); otherwise (and always when all
    four are 0, which then draws no extra random number) a random move or swap.

    A hard violation weighs `hard_weight` at `t_ref`, rising as sqrt(t_ref / T).
    The best state by `big_weight * hard + soft` ends in `best_genome`.
    result[:] = best hard, best soft, move evaluations, accepted moves, verify mismatches,
    repair ok (1/0). `verify_every > 0` re-evaluates from scratch every that many accepted
    moves and counts disagreements with the incremental counters (tests only).
    """
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    np.random.seed(seed)
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    L = dims[D_LECTURES]
    ppd = dims[D_PPD]
    D = dims[D_DAYS]
    ok = load_state(genome, data, state)
    result[5] = 1 if ok else 0
    if not ok:
        best_genome[:] = genome
        result[0] = -1
        return
    best_genome[:] = lecture_slot
    hard = _hard(cost)
    soft = _soft(cost)
    best_true = big_weight * hard + soft
    at_best = True
    check = np.zeros(8, np.int64)
    temperature = t_start
    alpha = (t_end / t_start) ** (1.0 / max(n_moves, 1))
    evaluations = 0
    accepted = 0
    mismatches = 0
    weight = hard_weight
    penalty_scale = 1.0
    special = course_room_prob + kempe_ls_prob + mwd_prob + compact_prob
    compound = course_room_prob + kempe_ls_prob
    moved_lecture = np.empty(L, np.int64)
    moved_slot = np.empty(L, np.int64)
    chain = np.zeros(dims[D_COURSES], np.int8)
    members = np.empty(dims[D_COURSES], np.int64)
    delta2 = np.zeros(2, np.int64)
    for it in range(n_moves):
        temperature *= alpha
        if it % 1024 == 0:
            # Hard violations get dearer as the search cools, so it ends feasible
            # after exploring through infeasible timetables while hot; and dearer still
            # while the search stays infeasible (cheaper again once it is feasible), so
            # it cannot settle among low soft costs it could never make feasible.
            if cost[K_CONFLICTS] + cost[K_AVAIL] > 0:
                penalty_scale = min(penalty_scale * 1.2, 1000.0)
            else:
                penalty_scale = max(penalty_scale / 1.05, 1.0)
            weight = hard_weight * penalty_scale * np.sqrt(max(1.0, t_ref / temperature))
        lecture = -1
        s2 = -1
        simple = True
        if special > 0.0:
            u = np.random.random()
            if u < compound:
                simple = False
                old_hard = _hard(cost)
                old_soft = _soft(cost)
                if u < course_room_prob:
                    n = _course_room_change(data, state, moved_lecture, moved_slot, delta2)
                else:
                    n = _kempe_move(data, state, chain, members, moved_lecture, moved_slot, delta2)
                if n == 0:
                    continue
                evaluations += 1
                dh = delta2[0]
                ds = delta2[1]
                if verify_every > 0 and (_hard(cost) - old_hard != dh or _soft(cost) - old_soft != ds):
                    mismatches += 1
                delta = weight * dh + ds
                if delta > 0 and (delta > 30.0 * temperature or np.random.random() >= np.exp(-delta / temperature)):
                    _undo(n, moved_lecture, moved_slot, data, state)
                    continue
                if at_best and big_weight * dh + ds > 0:
                    # The state before this move was a best one: save it (undo on the copy).
                    best_genome[:] = lecture_slot
                    for i in range(n):
                        best_genome[moved_lecture[i]] = moved_slot[i]
                    at_best = False
            elif u < special:
                if u < compound + mwd_prob:
                    lecture, s2 = _mwd_pick(L, R, D, ppd, lecture_course, first_lecture, min_days,
                                            lecture_slot, slot_lecture, slot_period, slot_room,
                                            day_count, days_used)
                else:
                    lecture, s2 = _compact_pick(L, R, P, ppd, lecture_course, ccur_off, ccur_list,
                                                lecture_slot, slot_lecture, slot_period, slot_room,
                                                period_pos, course_room_at, curr_load)
                if lecture < 0:
                    continue
        if simple:
            if lecture < 0:
                lecture = np.random.randint(0, L)
                c = lecture_course[lecture]
                s1 = lecture_slot[lecture]
                p1 = slot_period[s1]
                r1 = slot_room[s1]
                u = np.random.random()
                if u < period_only:
                    p2 = np.random.randint(0, P)
                    r2 = r1
                elif u < period_only + room_only:
                    p2 = p1
                    r2 = np.random.randint(0, R)
                else:
                    p2 = np.random.randint(0, P)
                    r2 = np.random.randint(0, R)
                s2 = p2 * R + r2
            else:
                c = lecture_course[lecture]
                s1 = lecture_slot[lecture]
                p1 = slot_period[s1]
                r1 = slot_room[s1]
                p2 = slot_period[s2]
                r2 = slot_room[s2]
            if s2 == s1:
                continue
            other = slot_lecture[s2]
            if other < 0:
                if p2 != p1 and course_room_at[c * P + p2] >= 0:
                    continue
                evaluations += 1
                dh, ds = _delta_move(c, p1, r1, p2, r2, -1, R, P, ppd, D, students, capacity,
                                     available, min_days, ccur_off, ccur_list, period_pos,
                                     nb_present, day_count, days_used, room_count, rooms_used,
                                     curr_load, prev_course, prev_weight)
                delta = weight * dh + ds
                if delta > 0 and (delta > 30.0 * temperature or np.random.random() >= np.exp(-delta / temperature)):
                    continue
                if at_best and big_weight * dh + ds > 0:
                    best_genome[:] = lecture_slot
                    at_best = False
                old_hard = _hard(cost)
                old_soft = _soft(cost)
                _remove(lecture, data, state)
                _insert(lecture, s2, data, state)
                if verify_every > 0 and (_hard(cost) - old_hard != dh or _soft(cost) - old_soft != ds):
                    mismatches += 1
                slot_lecture[s1] = -1
                slot_lecture[s2] = lecture
            else:
                c2 = lecture_course[other]
                if c2 == c:
                    continue
                if p1 != p2 and (course_room_at[c * P + p2] >= 0 or course_room_at[c2 * P + p1] >= 0):
                    continue
                evaluations += 1
                dh, ds = _delta_swap(c, s1, c2, s2, R, P, ppd, D, slot_period, slot_room,
                                     conf_off, conf_list, students, capacity, available,
                                     min_days, ccur_off, ccur_list, period_pos, nb_present,
                                     day_count, days_used, room_count, rooms_used, curr_load,
                                     prev_course, prev_weight)
                delta = weight * dh + ds
                if delta > 0 and (delta > 30.0 * temperature or np.random.random() >= np.exp(-delta / temperature)):
                    continue
                old_hard = _hard(cost)
                old_soft = _soft(cost)
                _remove(lecture, data, state)
                _remove(other, data, state)
                _insert(lecture, s2, data, state)
                _insert(other, s1, data, state)
                if verify_every > 0 and (_hard(cost) - old_hard != dh or _soft(cost) - old_soft != ds):
                    mismatches += 1
                if at_best and big_weight * dh + ds > 0:
                    # The state before this swap was a best one: save it (undo on the copy).
                    best_genome[:] = lecture_slot
                    best_genome[lecture] = s1
                    best_genome[other] = s2
                    at_best = False
                slot_lecture[s1] = other
                slot_lecture[s2] = lecture
        accepted += 1
        hard = _hard(cost)
        soft = _soft(cost)
        true_cost = big_weight * hard + soft
        if true_cost < best_true:
            best_true = true_cost
            at_best = True
        elif true_cost > best_true:
            at_best = False
        if verify_every > 0 and accepted % verify_every == 0:
            evaluate_one(lecture_slot, data, check)
            if (check[0] != 0 or check[3] != 0 or check[1] + check[2] != hard
                    or check[4] + check[5] + check[6] + check[7] + moved_cost(lecture_slot, data) != soft):
                mismatches += 1
    if at_best:
        best_genome[:] = lecture_slot
    evaluate_one(best_genome, data, check)
    result[0] = check[0] + check[1] + check[2] + check[3]
    result[1] = check[4] + check[5] + check[6] + check[7] + moved_cost(best_genome, data)
    result[2] = evaluations
    result[3] = accepted
    result[4] = mismatches
    if result[0] * big_weight + result[1] != best_true:
        result[4] += 1  # the tracked best disagrees with a full evaluation


@njit(cache=True)
def mutate_one(genome, seed, n_changes, kempe_prob, data, state):
    """Random changes that keep the state's invariant: moves to free slots, swaps, and
    Kempe chains (swap two periods for a connected set of conflicting courses)."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    (slot_lecture, lecture_slot, course_room_at, nb_present, day_count, days_used,
     room_count, rooms_used, curr_load, cost) = state
    np.random.seed(seed)
    R = dims[D_ROOMS]
    P = dims[D_PERIODS]
    L = dims[D_LECTURES]
    C = dims[D_COURSES]
    if not load_state(genome, data, state):
        return
    chain = np.zeros(C, np.int8)
    stack = np.empty(C, np.int64)
    for _ in range(n_changes):
        lecture = np.random.randint(0, L)
        c = lecture_course[lecture]
        s1 = lecture_slot[lecture]
        p1 = s1 // R
        p2 = np.random.randint(0, P)
        if p2 == p1:
            continue
        if np.random.random() < kempe_prob:
            # Courses reachable from c through conflicts, alternating p1 / p2.
            chain[:] = 0
            top = 0
            stack[top] = c
            top += 1
            chain[c] = 1
            while top > 0:
                top -= 1
                x = stack[top]
                for j in range(conf_off[x], conf_off[x + 1]):
                    y = conf_list[j]
                    if chain[y] == 0 and (course_room_at[y * P + p1] >= 0 or course_room_at[y * P + p2] >= 0):
                        chain[y] = 1
                        stack[top] = y
                        top += 1
            # Swap the chain's lectures between p1 and p2, keeping rooms where free.
            genome_slot_a = -1
            genome_slot_b = -1
            for y in range(C):
                if chain[y] == 0:
                    continue
                ra = course_room_at[y * P + p1]
                rb = course_room_at[y * P + p2]
                if ra >= 0:
                    for ly in range(first_lecture[y], first_lecture[y + 1]):
                        if lecture_slot[ly] == p1 * R + ra:
                            genome_slot_a = ly
                    _remove(genome_slot_a, data, state)
                    slot_lecture[p1 * R + ra] = -1
                    lecture_slot[genome_slot_a] = -(p2 * R + ra) - 1  # parked
                if rb >= 0:
                    for ly in range(first_lecture[y], first_lecture[y + 1]):
                        if lecture_slot[ly] == p2 * R + rb:
                            genome_slot_b = ly
                    _remove(genome_slot_b, data, state)
                    slot_lecture[p2 * R + rb] = -1
                    lecture_slot[genome_slot_b] = -(p1 * R + rb) - 1
            for ly in range(L):
                if lecture_slot[ly] < 0 and chain[lecture_course[ly]] == 1:
                    target = -lecture_slot[ly] - 1
                    lecture_slot[ly] = target
                    if slot_lecture[target] >= 0:
                        # Room taken by a course outside the chain: any free room there.
                        p = target // R
                        found = -1
                        for r in range(R):
                            if slot_lecture[p * R + r] < 0:
                                found = p * R + r
                                break
                        if found < 0:
                            lecture_slot[ly] = -1 - target
                            continue
                        target = found
                    _insert(ly, target, data, state)
                    slot_lecture[target] = ly
            for ly in range(L):
                if lecture_slot[ly] < 0:
                    # No room at all in the new period: best free slot anywhere.
                    s = _best_free_slot(ly, data, state, True)
                    if s < 0:
                        return  # instance too full to move anything: genome unchanged
                    _insert(ly, s, data, state)
                    slot_lecture[s] = ly
        else:
            r2 = np.random.randint(0, R)
            s2 = p2 * R + r2
            other = slot_lecture[s2]
            if course_room_at[c * P + p2] >= 0:
                continue
            if other < 0:
                _remove(lecture, data, state)
                _insert(lecture, s2, data, state)
                slot_lecture[s1] = -1
                slot_lecture[s2] = lecture
            else:
                c2 = lecture_course[other]
                if course_room_at[c2 * P + p1] >= 0:
                    continue
                _remove(lecture, data, state)
                _remove(other, data, state)
                _insert(lecture, s2, data, state)
                _insert(other, s1, data, state)
                slot_lecture[s1] = other
                slot_lecture[s2] = lecture
    genome[:] = lecture_slot


@njit(cache=True)
def crossover_courses(parent_a, parent_b, seed, share_b, data, state, child):
    """Each course's lectures come together from one parent (from parent_b with
    probability share_b); clashes are then repaired."""
    (dims, lecture_course, first_lecture, lectures_of, min_days, students, capacity,
     available, conf_off, conf_list, ccur_off, ccur_list, cur_off, cur_members,
     period_pos, slot_period, slot_room, prev_course, prev_weight) = data
    np.random.seed(seed)
    C = dims[D_COURSES]
    for c in range(C):
        source = parent_b if np.random.random() < share_b else parent_a
        for lecture in range(first_lecture[c], first_lecture[c + 1]):
            child[lecture] = source[lecture]
    if load_state(child, data, state):
        child[:] = state[1]
