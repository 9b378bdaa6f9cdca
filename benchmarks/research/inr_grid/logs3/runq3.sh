#!/bin/bash
# Sequential run queue for round 3 (one training at a time): pops the first line of
# logs3/queue.txt ("<logname> <grid3.py args>"), runs it; edit queue.txt while it runs.
cd "$(dirname "$0")/.."
while true; do
  line=$(head -n 1 logs3/queue.txt 2>/dev/null)
  [ -z "$line" ] && { sleep 5; [ -f logs3/queue.stop ] && exit 0; continue; }
  sed -i '1d' logs3/queue.txt
  name=${line%% *}; args=${line#* }
  echo "$(date +%T) start $name: $args" >> logs3/queue.log
  /work/venv/bin/python grid3.py $args > logs3/$name.log 2>&1
  echo "$(date +%T) done $name rc=$?" >> logs3/queue.log
done
