"""Wall time of single backend solves against small time limits (the watchdog), on main and worker
threads, on the tests' hard_instance (a 100-point classification sweep within Gurobi's pip licence).

    nice -n 10 .venv/bin/python benchmarks/scripts/watchdog_limits.py OUT.json
"""
import json, os, sys, time, threading
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2] / "tests"))
from instances import hard_instance
from gdsolver.compile import solve
from gdsolver.ir import verify
inst = hard_instance()
rows = []
for be in ("highs", "scip", "gurobi"):
    for limit in (1.0, 3.0, 10.0):
        for where in ("main", "thread"):
            box = {}
            def go():
                t = time.monotonic()
                r = solve(inst, be, time_limit=limit)
                box.update(r=r, wall=time.monotonic() - t)
            if where == "main":
                go()
            else:
                th = threading.Thread(target=go); th.start(); th.join()
            r = box["r"]
            row = dict(backend=be, limit=limit, thread=where, wall=round(box["wall"], 3), ratio=round(box["wall"] / limit, 3),
                       status=r.status, termination=r.termination, watchdog="watchdog" in r.message,
                       verified=bool(r.x is not None and verify(inst, r.x).ok), load=os.getloadavg()[0])
            rows.append(row); print(json.dumps(row), flush=True)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
