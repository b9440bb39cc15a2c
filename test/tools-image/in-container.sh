#!/usr/bin/env bash
# Runs one of the tests' outside programs (soffice, pdftoppm, mariadb-dump, promtool, chromium...) in
# the tools image, for a machine that has a container engine but not the program. test/tools-container.ts
# puts a stub per program first on the tests' PATH; each stub calls
#   in-container.sh SETTINGS PROGRAM [ARGS...]
# where SETTINGS is the run's settings file (bash: engine, engine_env, image, mounts, user, label,
# ulimits, tmp; test/tools-container.ts says what each holds). To the caller it behaves like the program itself:
# - the caller's working directory, the temp folder and the worktree are mounted at the same paths, so
#   file arguments mean the same inside; the network is the machine's (127.0.0.1 is the caller's);
# - stdin, stdout and stderr pass through, and so does the exit code (125 when the engine could not
#   run the image, 127 when the program is not in it);
# - TERM, INT, HUP, QUIT, USR1 and USR2 are passed to the program (tini in the image hands them to
#   its whole process group);
# - a SIGKILL of the caller's process group, which is how infra/documents/run-tool.ts enforces a time
#   limit, kills the container too. The engine's client (`docker run`) cannot do that by itself: killed,
#   it leaves the container running. So the client runs under a supervisor in a session of its own
#   (this script with --supervise), which the group's kill does not reach: when the caller is gone
#   while the client still runs, it kills the container, and only then exits. It holds the caller's
#   stdout and stderr until then, so whoever waits for them (run-tool.ts waits for 'close') knows that
#   nothing of the program is left when they close.
# Linux only (setsid, /proc): the machines this is for.

# shellcheck disable=SC1090 # the settings file is written by test/tools-container.ts
if [ "${1:-}" = --supervise ]; then
  # --supervise SETTINGS CALLER NAME ARGS-FILE: runs `ENGINE run ARGS...` and watches CALLER. The
  # arguments come in a file (NUL-separated), not on this command line: this process and its forks
  # (the watcher) must not look like the program to a test that looks for processes naming its files.
  settings="$2" caller="$3" name="$4"
  mapfile -d '' -t run_args <"$5"
  rm -f "$5"
  . "$settings"
  eng() { env "${engine_env[@]}" "${engine[@]}" "$@"; }
  exec 3<&0 # an asynchronous command's stdin would be /dev/null otherwise
  eng run "${run_args[@]}" <&3 3<&- &
  client=$!
  exec 3<&-
  (
    exec </dev/null >/dev/null 2>&1
    while kill -0 "$caller" 2>/dev/null; do
      kill -0 "$client" 2>/dev/null || exit 0
      sleep 0.1
    done
    # The caller was killed while the client runs: kill the container, and again until the client
    # ends (it may not have created or started the container yet; once it has ended, nothing will).
    while kill -0 "$client" 2>/dev/null; do
      eng kill "$name"
      sleep 0.2
    done
  ) &
  watcher=$!
  wait "$client"
  code=$?
  kill "$watcher" 2>/dev/null
  # Removed afterwards, not with `run --rm`: through podman's Docker API, `--rm` loses the exit code
  # (the client reports 0). In the background, so the caller does not wait for it; the test run's
  # teardown removes what is left (by the run's label).
  env "${engine_env[@]}" "${engine[@]}" rm -f "$name" </dev/null >/dev/null 2>&1 &
  exit "$code"
fi

settings="$1" program="$2"
shift 2
. "$settings"
name="postroom-tool-$$-$RANDOM$RANDOM"

# Folders mounted at the same path: the settings' (temp folder, worktree) and the working directory.
cwd="$(pwd -P)"
under() { # under PATH DIR: PATH is DIR or inside it
  case "$1/" in "$2"/*) return 0 ;; *) return 1 ;; esac
}
mounted() {
  local m
  for m in "${mounts[@]}"; do under "$1" "$m" && return 0; done
  return 1
}
mounted "$cwd" || mounts+=("$cwd")
args=(-i --name "$name" --label "$label" --network host --pull never -w "$cwd" "${ulimits[@]}" "${user[@]}")
for m in "${mounts[@]}"; do args+=(-v "$m:$m"); done

# The caller's environment goes in by name (values stay off command lines: MYSQL_PWD), except what
# belongs to this machine or to the engine. HOME is kept when it is mounted, else the temp folder.
home="${HOME:-$tmp}"
mounted "$home" || home="$tmp"
args+=(-e "HOME=$home")
for n in $(compgen -e); do
  case "$n" in
    PATH | HOME | HOSTNAME | PWD | OLDPWD | SHLVL | _ | DOCKER_* | CONTAINER_* | CONTAINERS_* | \
      XDG_RUNTIME_DIR | LD_*) ;;
    *) args+=(-e "$n") ;;
  esac
done

exec 3<&0 # an asynchronous command's stdin would be /dev/null otherwise
# In the caller's process group, this child is no group leader: setsid makes it a session of its own
# without forking, so $! is the supervisor itself.
argsfile="$(dirname "$settings")/$name.args"
printf '%s\0' "${args[@]}" "$image" "$program" "$@" >"$argsfile"
setsid "$BASH" "$0" --supervise "$settings" "$$" "$name" "$argsfile" <&3 3<&- &
supervisor=$!
exec 3<&-

forward() { env "${engine_env[@]}" "${engine[@]}" kill --signal "$1" "$name" >/dev/null 2>&1; }
for s in TERM INT HUP QUIT USR1 USR2; do
  trap "forward $s" "$s"
done
while :; do
  wait "$supervisor"
  code=$?
  # Above 128 with the supervisor still there: a signal interrupted the wait (and was forwarded).
  [ "$code" -gt 128 ] && kill -0 "$supervisor" 2>/dev/null && continue
  break
done
exit "$code"
