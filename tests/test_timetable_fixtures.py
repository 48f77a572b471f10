"""Hand-made tiny CB-CTT instance shared by the timetable tests (costs known by hand; no tests here)."""

TINY_CTT = """Name: Tiny
Courses: 3
Rooms: 2
Days: 2
Periods_per_day: 3
Curricula: 1
Constraints: 1

COURSES:
cX t1 2 2 20
cY t2 2 1 5
cZ t1 1 1 30

ROOMS:
rA 10
rB 30

CURRICULA:
q1 2 cX cY

UNAVAILABILITY_CONSTRAINTS:
cZ 1 2

END.
"""
