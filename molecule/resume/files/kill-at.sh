#!/bin/sh
# Stands in for a storage tool (it is linked under that tool's name) and kills the storage_apply module
# at one point of the build, as a power cut would. Test only: runs in the scenario's guest.
# The point is armed in $dir/point as "TOOL WORD COUNT WHEN": the COUNT-th call of TOOL whose arguments
# hold WORD ("-" for any) kills the module (its parent) before the call runs, after it returns, or
# 0.3 s into it ("during": the call is killed too). "cut" leaves the call running for 0.5 s, records it, and
# holds the build there (the module waits forever) for the host to cut the power (qemu.py power-cut): the
# guest's unwritten data is lost with it. "hold" holds the call until $dir/release exists, then runs it (the
# test pulls a disk meanwhile). $dir/fired records which call it was.
dir=/run/pre-nixos-kill
name=$(basename "$0")
real=$(PATH=/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin command -v "$name")
if [ -r "$dir/point" ] && read -r tool word count when < "$dir/point" && [ "$name" = "$tool" ]; then
    case " $* " in
        *" $word "*) matched=yes ;;
        *) matched=$([ "$word" = - ] && echo yes) ;;
    esac
    if [ "$matched" = yes ]; then
        seen=$(( $(cat "$dir/seen" 2>/dev/null || echo 0) + 1 ))
        echo "$seen" > "$dir/seen"
        if [ "$seen" -eq "$count" ]; then
            rm -f "$dir/point"
            case $when in
                after) "$real" "$@" ;;
                during) "$real" "$@" & sleep 0.3
                        if kill -KILL $! 2>/dev/null; then when="during (killed running)"; else when="during (had ended)"; fi ;;
            esac
            if [ "$when" = hold ]; then  # held until the test writes $dir/release, then the call runs
                echo "hold: $name $*" > "$dir/fired"
                while [ ! -e "$dir/release" ]; do sleep 0.2; done
                exec "$real" "$@"
            fi
            if [ "$when" = cut ]; then
                "$real" "$@" & sleep 0.5
                echo "cut: $name $*" > "$dir/fired"
                sleep 100000
            fi
            echo "$when: $name $*" > "$dir/fired"
            kill -KILL "$PPID"
            exit 137
        fi
    fi
fi
exec "$real" "$@"
