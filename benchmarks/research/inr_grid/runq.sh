#!/bin/bash
# Sequential run queue (one training at a time): pops the first line of queue.txt
# ("<logname> <grid2.py args>") and runs it; edit queue.txt while it runs.
cd "$(dirname "$0")"
while true; do
  line=$(head -n 1 queue.txt 2>/dev/null)
  [ -z "$line" ] && { sleep 5; [ -f queue.stop ] && exit 0; continue; }
  sed -i '1d' queue.txt
  name=${line%% *}; args=${line#* }
  echo "$(date +%T) start $name: $args" >> logs/queue.log
  /work/venv/bin/python grid2.py $args > logs/$name.log 2>&1
  echo "$(date +%T) done $name rc=$?" >> logs/queue.log
done
