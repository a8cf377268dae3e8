#!/usr/bin/env bash
# virtus build: a recipe with every supported instruction builds, its steps did what they say (checked inside
# RUN steps and in the image config), a rebuild is all cache, a changed COPY source rebuilds from its step,
# and failures (a failing RUN, an unknown instruction, a missing source, SIGINT) name the step and line,
# leave no image named and nothing mounted or running.
. "$(dirname "$0")/lib.bash"
require_root

busybox_tar "$WORK/busybox.tar"
v image import "$WORK/busybox.tar" busybox >/dev/null || { not_ok "import the busybox base"; finish; }

CTX=$WORK/ctx
mkdir -p "$CTX/src/sub" "$CTX/arch/d"
echo "first" >"$CTX/app.txt"
echo "nested" >"$CTX/src/sub/f"
echo "secret" >"$CTX/src/sub/debug.log"
echo "from the archive" >"$CTX/arch/d/inside"
tar -czf "$CTX/bundle.tar.gz" -C "$CTX/arch" .
printf '# build outputs\n**/*.log\narch\n' >"$CTX/.containerignore"
cat >"$CTX/Containerfile" <<'EOF'
# every instruction of the subset
ARG BASE=busybox
FROM $BASE
ARG GREETING=hello
ARG UNUSED_DEFAULT=x
ENV APP_DIR=/srv/app \
    QUOTED="two words"
WORKDIR ${APP_DIR}
RUN echo "marker-shell $GREETING $QUOTED" && pwd > /pwd.txt && grep SigBlk /proc/self/status
RUN ["/bin/echo", "marker-exec", "$GREETING"]
COPY --chown=nobody:nogroup app.txt ./
COPY src /opt/src/
ADD bundle.tar.gz /opt/unpacked/
RUN echo marker-check && stat -c '%U:%G %n' app.txt /opt/src/sub/f > /stat.txt \
 && cat /opt/unpacked/d/inside > /inside.txt && test ! -e /opt/src/sub/debug.log && test ! -e /opt/arch
USER nobody
RUN whoami > /tmp/whoami.txt; echo marker-user
LABEL org.example.version="1.2" org.example.name=demo
EXPOSE 8080 53/udp
CMD ["sh", "-c", "echo $QUOTED"]
ENTRYPOINT ["/bin/env"]
EOF

# build NAME ARGS...: run a build, output in $WORK/out and $WORK/err, the id (last line) in $ID
build() {
	local t0 t1
	t0=$(date +%s%N)
	v build "$@" >"$WORK/out" 2>"$WORK/err"
	BUILD_RC=$?
	t1=$(date +%s%N)
	BUILD_MS=$(( (t1 - t0) / 1000000 ))
	ID=$(tail -n1 "$WORK/out")
}
config() { jq -c "$1" "$STORE/image/blobs/sha256/$ID"; }
# layer_file PATH: the file from the newest layer of the image that has it
layer_file() {
	local d
	for d in $(jq -r '.rootfs.diff_ids | reverse | .[]' "$STORE/image/blobs/sha256/$ID" | sed 's/^sha256://'); do
		if [ -e "$STORE/layers/$d$1" ]; then cat "$STORE/layers/$d$1"; return 0; fi
	done
	return 1
}
mounts_under_store() { grep -c " $STORE" /proc/self/mounts; }
# checke NAME EXPR: ok if the shell expression (evaluated here, so it sees the functions above) is true
checke() { if eval "$2"; then ok "$1"; else not_ok "$1" "$2"; fi; }

build -t demo:1 --build-arg GREETING=yo "$CTX"
COLD_MS=$BUILD_MS
if [ "$BUILD_RC" = 0 ] && [ -f "$STORE/image/blobs/sha256/$ID" ]; then ok "the recipe builds (${COLD_MS} ms)"
else not_ok "the recipe builds" "rc=$BUILD_RC" "$(tail -5 "$WORK/err")"; fi
checke "each step prints STEP i/n and ends with its id and time" \
	'[ "$(grep -c "^STEP [0-9]*/18: " "$WORK/out")" = 18 ] && grep -qE "^--> [0-9a-f]{12} \([0-9]+\.[0-9]{2} s\)$" "$WORK/out"'
check "RUN shell form ran, with the --build-arg and ENV values" grep -qx "marker-shell yo two words" "$WORK/out"
check "RUN's process has no blocked signal (the build's own mask is not inherited)" \
	grep -qE "^SigBlk:[[:space:]]+0+$" "$WORK/out"
check "RUN exec form ran without a shell (no substitution)" grep -qx 'marker-exec $GREETING' "$WORK/out"
checke "no warning: every --build-arg was used" '! grep -q warning "$WORK/out"'
if [ "$(layer_file /pwd.txt)" = /srv/app ]; then ok "WORKDIR is the RUN's working directory (and created)"
else not_ok "WORKDIR is the RUN's working directory" "pwd.txt: $(layer_file /pwd.txt)"; fi
stat_txt=$(layer_file /stat.txt)
if grep -qx "nobody:nogroup app.txt" <<<"$stat_txt" && grep -qx "root:root /opt/src/sub/f" <<<"$stat_txt"; then
	ok "COPY --chown gives the owner; plain COPY gives root (a directory's contents copied)"
else not_ok "COPY owners" "$stat_txt"; fi
if [ "$(layer_file /inside.txt)" = "from the archive" ]; then ok "ADD unpacks a tar.gz into the destination"
else not_ok "ADD unpacks a tar.gz" "$(layer_file /inside.txt)"; fi
check ".containerignore keeps **/*.log and arch/ out (checked in RUN)" grep -qx marker-check "$WORK/out"
if [ "$(layer_file /tmp/whoami.txt)" = nobody ]; then ok "USER applies to later RUN steps"
else not_ok "USER applies to RUN" "$(layer_file /tmp/whoami.txt)"; fi

cfg=$(config .config)
jqe() { jq -e "$1" <<<"$cfg" >/dev/null; }
checke "config: Env has the ENV values (quotes removed)" 'jqe ".Env | index(\"APP_DIR=/srv/app\") and index(\"QUOTED=two words\")"'
checke "config: WorkingDir and User" 'jqe ".WorkingDir == \"/srv/app\" and .User == \"nobody\""'
checke "config: Cmd and Entrypoint (exec form)" 'jqe ".Cmd == [\"sh\",\"-c\",\"echo \$QUOTED\"] and .Entrypoint == [\"/bin/env\"]"'
checke "config: Labels and ExposedPorts" \
	'jqe ".Labels[\"org.example.version\"] == \"1.2\" and .Labels[\"org.example.name\"] == \"demo\" and (.ExposedPorts | has(\"8080/tcp\") and has(\"53/udp\"))"'
checke "config: ARG values are not in Env" '! jqe ".Env[] | select(startswith(\"GREETING\"))"'
checke "the image is named demo:1" 'v image ls | grep -q "localhost/demo *1 *${ID:0:12}"'
checke "history: an entry per step after FROM" '[ "$(config ".history | length")" -ge 17 ]'

# An unchanged rebuild: every step from the cache, no RUN runs.
build -t demo:1 --build-arg GREETING=yo "$CTX"
first_id=$ID
if [ "$BUILD_RC" = 0 ] && ! grep -q "^marker" "$WORK/out" && [ "$(grep -c -- '--> Using cache' "$WORK/out")" = 16 ]; then
	ok "a rebuild takes all 16 steps after FROM from the cache and runs no RUN"
else not_ok "a rebuild is all cache" "rc=$BUILD_RC" "$(grep -c -- 'Using cache' "$WORK/out") cache hits" "$(head -c 600 "$WORK/out")"; fi
if [ $((BUILD_MS * 2)) -lt "$COLD_MS" ]; then ok "the cached rebuild is much faster (${BUILD_MS} ms vs ${COLD_MS} ms)"
else not_ok "the cached rebuild is much faster" "cached ${BUILD_MS} ms, cold ${COLD_MS} ms"; fi

# Another --build-arg value changes the RUN steps (their ARGs are part of the key).
build -t demo:2 --build-arg GREETING=other "$CTX"
check "another --build-arg value re-runs the RUN steps" grep -qx "marker-shell other two words" "$WORK/out"

# Changing a COPY source: the steps before it are cached, it and the rest run again.
echo "second" >"$CTX/app.txt"
build -t demo:1 --build-arg GREETING=yo "$CTX"
hits=$(grep -c -- '--> Using cache' "$WORK/out")
if [ "$BUILD_RC" = 0 ] && ! grep -q "^marker-shell" "$WORK/out" && grep -qx marker-check "$WORK/out" && [ "$hits" = 6 ]; then
	ok "a changed COPY source rebuilds from that step on (6 steps cached before it)"
else not_ok "a changed COPY source rebuilds from its step" "rc=$BUILD_RC hits=$hits" "$(head -c 800 "$WORK/out")"; fi
checke "the name moved to the new image" '[ "$ID" != "$first_id" ] && v image ls | grep -q "localhost/demo *1 *${ID:0:12}"'
build --no-cache -t demo:1 --build-arg GREETING=yo "$CTX"
checke "--no-cache runs every RUN again" '[ $BUILD_RC = 0 ] && grep -q "^marker-shell" "$WORK/out" && ! grep -q "Using cache" "$WORK/out"'

# Failures.
F=$WORK/fail
mkdir -p "$F"
printf 'FROM busybox\nRUN echo before\n\n# a comment\nRUN echo failing; exit 3\nRUN echo never\n' >"$F/Containerfile"
build -t broken "$F"
msg="virtus build: step 3/4 (Containerfile line 5): RUN echo failing; exit 3: exit status 3"
if [ "$BUILD_RC" = 1 ] && grep -qxF "$msg" "$WORK/err" && ! grep -q never "$WORK/out"; then
	ok "a failing RUN stops the build with the step, the line and the exit status"
else not_ok "a failing RUN" "rc=$BUILD_RC" "$(cat "$WORK/err")"; fi
checke "a failed build names no image" '! v image ls | grep -q broken'

printf 'FROM busybox\nRUN true\nFROBNICATE now\n' >"$F/Containerfile"
build -t broken "$F"
checke "an unknown instruction is an error naming the line" \
	'[ $BUILD_RC = 1 ] && grep -qx "virtus build: Containerfile line 3: unknown instruction FROBNICATE" "$WORK/err"'

printf 'FROM busybox\nCOPY missing.txt /x\n' >"$F/Containerfile"
build -t broken "$F"
checke "a missing COPY source names the step and the file" \
	'[ $BUILD_RC = 1 ] && grep -q "step 2/2 (Containerfile line 2): COPY missing.txt /x: .*missing.txt" "$WORK/err"'

# A sleep of its own length: other tests running at the same time have their own sleeps.
NAP=$((100000 + RANDOM))
printf 'FROM busybox\nRUN sleep %s\n' "$NAP" >"$F/Containerfile"
# virtus itself in the background (a backgrounded shell function would get the signal instead)
"$VIRTUS" --root "$STORE" build -t broken "$F" >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 50); do pgrep -x -f "sleep $NAP" >/dev/null && break; sleep 0.1; done
kill -TERM "$pid"
wait "$pid"
rc=$?
if [ "$rc" = 1 ] && grep -q "RUN sleep $NAP: interrupted" "$WORK/err" && ! pgrep -x -f "sleep $NAP" >/dev/null; then
	ok "SIGTERM stops a RUN step: the container is killed, the build says so"
else not_ok "SIGTERM stops the build" "rc=$rc" "$(cat "$WORK/err")"; fi

# A build killed outright (SIGKILL: no cleanup) leaves its RUN container and directory; the next build
# removes both.
NAP=$((NAP + 1))
printf 'FROM busybox\nRUN sleep %s\n' "$NAP" >"$F/Containerfile"
"$VIRTUS" --root "$STORE" build -t broken "$F" >"$WORK/out" 2>"$WORK/err" &
pid=$!
for _ in $(seq 50); do pgrep -x -f "sleep $NAP" >/dev/null && break; sleep 0.1; done
kill -KILL "$pid"
wait "$pid" 2>/dev/null
left=$(ls "$STORE/build" | wc -l)
printf 'FROM busybox\nENV A=1\n' >"$F/Containerfile"
build "$F"
if [ "$left" = 1 ] && [ "$BUILD_RC" = 0 ] && ! pgrep -x -f "sleep $NAP" >/dev/null && [ -z "$(ls -A "$STORE/build")" ]; then
	ok "the next build removes what a killed build left (its RUN container and directory)"
else not_ok "the next build cleans up after a killed one" "left=$left rc=$BUILD_RC" "$(pgrep -a -x -f "sleep $NAP")"; fi

build -t "Bad Name!" "$F"
checke "a bad -t name is refused before any step runs" \
	'[ $BUILD_RC = 1 ] && grep -q "invalid image name" "$WORK/err" && ! grep -q "^STEP" "$WORK/out"'

# The same layer twice in one image (overlayfs refuses a directory listed twice): the higher copy is enough.
echo again >"$F/x"
printf 'FROM busybox\nCOPY x /x\nRUN rm /x\nCOPY x /x\nRUN cat /x\n' >"$F/Containerfile"
build -t twice "$F"
checke "an image with the same layer twice mounts (COPY x; RUN rm x; COPY x; RUN cat x)" \
	'[ $BUILD_RC = 0 ] && grep -qx again "$WORK/out"'

# Multi-stage: a stage builds, a later one takes only its output (COPY --from by name, by number, and from
# an image), a stage is a base for a later FROM, ARGs start afresh in each stage; the image is the last stage.
M=$WORK/multi
mkdir -p "$M"
echo ctx-file >"$M/c.txt"
cat >"$M/Containerfile" <<'EOF2'
ARG OUT=out.txt
FROM busybox AS builder
ARG OUT
ARG STAGE_ONLY=builder-arg
RUN mkdir /build && echo "built $OUT" > /build/$OUT && echo junk > /build/junk && echo $STAGE_ONLY > /build/arg
FROM builder AS tested
RUN test -e /build/out.txt && echo tested > /build/ok
FROM busybox
COPY c.txt /app/
COPY --from=builder /build/out.txt /app/
COPY --from=1 /build/ok /app/
COPY --from=busybox /bin/busybox /app/bb
RUN echo "arg=[$STAGE_ONLY]" > /app/arg && ls /app > /app/list
CMD ["cat", "/app/out.txt"]
EOF2
build -t multi:1 "$M"
if [ "$BUILD_RC" = 0 ] && [ "$(v run --rm --network none multi:1)" = "built out.txt" ]; then ok "multi-stage: the last stage is the image, with a file COPY --from=NAME took from a stage"
else not_ok "multi-stage build" "rc=$BUILD_RC" "$(tail -n 5 "$WORK/err")"; fi
checke "multi-stage: COPY --from=N (a stage that was FROM an earlier stage) and --from=IMAGE; the stage's other files stay out" \
	'[ "$(v run --rm --network none multi:1 cat /app/list | tr "\n" " ")" = "arg bb c.txt list ok out.txt " ] &&
	 v run --rm --network none multi:1 sh -c "test ! -e /build && test ! -e /app/junk"'
checke "multi-stage: ARGs are per stage (a later stage does not see the builder's)" \
	'[ "$(v run --rm --network none multi:1 cat /app/arg)" = "arg=[]" ]'
build -t multi:1 "$M"
checke "multi-stage: a rebuild takes all 10 steps after the FROMs from the cache" '[ $BUILD_RC = 0 ] && [ "$(grep -c "Using cache" "$WORK/out")" = 10 ] && ! grep -q "^built" "$WORK/out"'
printf 'FROM busybox AS a\nRUN echo x > /x\nFROM busybox\nCOPY --from=nosuch /x /x\n' >"$F/Containerfile"
build -t broken "$F"
checke "COPY --from a stage or image that does not exist names it; no image, nothing mounted" \
	'[ $BUILD_RC = 1 ] && grep -q "COPY --from=nosuch: no earlier stage and no image of that name" "$WORK/err" &&
	 ! v image ls | grep -q broken && [ "$(mounts_under_store)" = 0 ]'
printf 'FROM busybox AS a\nFROM busybox\nCOPY --from=a /nonexistent /x\n' >"$F/Containerfile"
build -t broken "$F"
checke "COPY --from a stage without the file names the file and the stage" '[ $BUILD_RC = 1 ] && grep -q "/nonexistent. is not in stage a" "$WORK/err"'

checke "v build without DIR is a usage error (status 2)" 'v build >/dev/null 2>&1; [ $? = 2 ]'
checke "v build --help prints the usage" 'v build --help | grep -q "^usage: virtus build"'
checke "nothing is mounted under the store" '[ "$(mounts_under_store)" = 0 ]'
checke "no temporary build directory is left" '[ -z "$(ls -A "$STORE/build")" ]'
finish
