import sys, runpy
from hf_steer.memory import bench
bench.PATHS["default"] = {"recite": False}
sys.argv = sys.argv[:1] + sys.argv[1:]
sys.argv[0] = "exp.py"
runpy.run_path("exp.py", run_name="__main__")
