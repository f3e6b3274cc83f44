#!/bin/sh
# Run ALONE under flock -x: breakdown + 2 chats (4 chunks) end-to-end with 2 threads, the recipe read at start.
cd $(dirname "$0")/../../../..
R=$(cat ${RECIPE:-docs/results/memory/issue14_speed/recipe.json})
echo "start $(date -u) load $(cat /proc/loadavg) recipe $R"
PYTHONPATH=$PWD /work/main/.venv/bin/python docs/results/memory/issue14_speed/prof2.py 2 "$R" 2>&1 | grep -v -i "warn\|Loading"
PYTHONPATH=$PWD /work/main/.venv/bin/python docs/results/memory/issue14_speed/tm.py 2 "$R" 2 2>&1 | grep wall
echo "end $(date -u) load $(cat /proc/loadavg)"
