#!/usr/bin/env bash
# A new user's path, on the package as npm would publish it, so that it cannot break again:
#
#   pack         npm pack, as in a fresh clone: the prepack script builds dist/; the tarball
#                must hold every "exports" entry's files and what they import
#   install      a fresh ESM app installs the tarball with README.md's own install line (the
#                sh block under "## Install"), whose versions must be package.json's peer ranges
#   typecheck    README.md's quick start, copied from README.md, compiles under strict NodeNext
#   quickstart   ... and runs UNCHANGED against local Kinesis + S3, configured by the environment
#   writer-bundle  a writer bundled by esbuild into one file writes 20 records in < 3 s
#   reader-bundle  a reader-only bundle holds neither prom-client nor @effect/platform-node
#
# Prints "user-path: <step> ok" per step, or "user-path: <step> FAILED: <reason>". The setup
# steps (pack, install, servers) stop the run when they fail; the checks after them all run,
# and the script exits 1 at the end if any failed. Temporary files and servers are removed
# on every exit.
#
#   .ci/user-path.sh                                  # from the repo root, after npm ci
#   USER_PATH_READER_ENTRY=cygnus-kinesis-writer .ci/user-path.sh   # reader from another entry
set -euo pipefail
set -o errtrace
cd "$(dirname "$0")/.."
repo=$PWD

# The entry point a reader-only application imports RecordReader from.
readonly READER_ENTRY=${USER_PATH_READER_ENTRY:-cygnus-kinesis-writer/reader}
# Packages a reader-only bundle must not contain (platform-node-shared comes with platform-node).
readonly READER_FORBIDDEN=(prom-client @effect/platform-node @effect/platform-node-shared)
# A batch of 20 records through the bundled writer, from program start to the end of the batch.
readonly WRITER_LIMIT_MS=3000
# After its batch, the bundled writer must exit within this (no thread or socket left running).
readonly EXIT_SLACK_MS=5000
# The app's dev tools, pinned.
readonly APP_DEV_DEPS=(typescript@5.9.3 @types/node@20 esbuild@0.28.2)
# What AWS SDK v3 code needs in an ESM bundle: its CommonJS parts call require().
readonly ESM_BANNER="import { createRequire } from 'module'; const require = createRequire(import.meta.url);"

now_ms() { date +%s%3N; }
started=$(now_ms)
work=$(mktemp -d "${TMPDIR:-/tmp}/user-path.XXXXXX")
app=$work/app   # the user's application
run=$work/run   # where bundles run: no node_modules in it or above it
logs=$work/logs
mkdir -p "$app" "$run" "$logs"
servers_pid=""
current=setup
step_started=$started
failures=()

stop_servers() {
  if [ -n "$servers_pid" ] && kill -0 "$servers_pid" 2>/dev/null; then
    kill -TERM "$servers_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$servers_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$servers_pid" 2>/dev/null || true
  fi
  servers_pid=""
}
cleanup() {
  local status=$?
  stop_servers
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'echo "user-path: interrupted" >&2; exit 130' INT TERM
trap 'status=$?; echo "user-path: $current FAILED: unexpected exit $status at line $LINENO" >&2' ERR

begin() { current=$1; step_started=$(now_ms); }
ok() { echo "user-path: $current ok ($(( $(now_ms) - step_started )) ms)${1:+: $1}"; }
# A setup step failed: nothing after it can run.
fatal() { echo "user-path: $current FAILED: $*" >&2; exit 1; }
# A check failed: say why, go on with the next one.
failed() { echo "user-path: $current FAILED: $*" >&2; failures+=("$current"); }
show() { sed 's/^/    | /' "$@" >&2; }
tail_log() { tail -n "${2:-30}" "$1" | show; }

# The block of a README section: the first ```LANG fence under "## SECTION".
readme_block() {
  awk -v section="## $1" -v fence="\`\`\`$2" '
    /^## / { inside = ($0 == section); next }
    inside && !block && $0 == fence { block = 1; next }
    block && /^```/ { exit }
    block { print }
  ' README.md
}

# Runs a command as the user's program would run against the local servers: the endpoints,
# region and credentials of servers.env, nothing from this machine's AWS configuration.
with_local_aws() {
  (
    unset AWS_PROFILE AWS_DEFAULT_PROFILE AWS_SESSION_TOKEN AWS_ENDPOINT_URL AWS_DEFAULT_REGION
    export AWS_CONFIG_FILE=$work/no-aws-config AWS_SHARED_CREDENTIALS_FILE=$work/no-aws-credentials
    export AWS_EC2_METADATA_DISABLED=true
    # shellcheck disable=SC1091
    . "$work/servers.env"
    exec "$@"
  )
}

# ---------------------------------------------------------------------------------------------
begin pack
# No build before this: npm pack runs the prepack script, which builds dist/ afresh, as it
# does for a user who packs a fresh clone. (.ci/run calls this script before anything builds.)
built_before=$([ -e dist ] && echo "dist/ existed before packing; prepack rebuilt it" || echo "no dist/ before packing")
tarball=$(npm pack --silent --pack-destination "$work" 2>"$logs/pack.log" | tail -n 1) \
  || { tail_log "$logs/pack.log"; fatal "npm pack failed"; }
tarball=$work/$tarball
[ -f "$tarball" ] || { tail_log "$logs/pack.log"; fatal "npm pack did not write $tarball"; }
mkdir -p "$work/unpacked"
tar -xzf "$tarball" -C "$work/unpacked" || fatal "could not unpack $tarball"
node .ci/user-path/tarball-entries.mjs "$work/unpacked/package" >"$logs/entries.log" 2>&1 \
  || { show "$logs/entries.log"; fatal "the tarball lacks files its entry points need (above)"; }
ok "$(basename "$tarball"), $(( $(stat -c %s "$tarball") / 1024 )) KiB, $(tar -tzf "$tarball" | wc -l) files; $built_before; $(tail -n 1 "$logs/entries.log")"

# Local Kinesis + S3 start now, while npm installs. `node --import tsx` (not npx tsx): one
# process, so the pid is the servers' own and SIGTERM reaches their shutdown handler.
node --import tsx .ci/user-path/servers.ts "$work/servers.env" >"$logs/servers.log" 2>&1 &
servers_pid=$!

# ---------------------------------------------------------------------------------------------
begin install
install_text=$(readme_block Install sh | sed 's/[[:space:]]*\\$//' | tr '\n' ' ')
[ -n "$install_text" ] || fatal "README.md has no \`\`\`sh block under '## Install'"
case "$install_text" in
  *[!A-Za-z0-9@/^~._\ -]*) fatal "README.md's install line has characters this script does not run: $install_text" ;;
esac
read -r -a install_words <<<"$install_text"
[ "${install_words[0]}:${install_words[1]}" = "npm:install" ] \
  || fatal "README.md's install block is not one 'npm install' line: $install_text"
install_args=()
named=0
for word in "${install_words[@]:2}"; do
  if [ "$word" = cygnus-kinesis-writer ]; then install_args+=("$tarball"); named=$((named + 1)); else install_args+=("$word"); fi
done
[ "$named" -eq 1 ] || fatal "README.md's install line must name cygnus-kinesis-writer once: $install_text"
# Every peer dependency but the testing entry's emulators, with exactly its package.json range (a bare name lets npm pick a
# major the library does not support: effect 4 and ERESOLVE), and @bufbuild/protobuf.
drift=$(node -e '
  const pkg = JSON.parse(require("fs").readFileSync("package.json", "utf8"))
  const words = process.argv.slice(1)
  const problems = []
  // The emulators are optional peers of ./testing alone (LocalAws): the testing section names them.
  const testingOnly = new Set(["kinesalite", "s3rver"])
  for (const [name, range] of Object.entries(pkg.peerDependencies ?? {})) {
    if (testingOnly.has(name)) continue
    if (!words.includes(`${name}@${range}`)) problems.push(`${name}@${range} (package.json peerDependencies)`)
  }
  if (!words.some((w) => w.startsWith("@bufbuild/protobuf"))) problems.push("@bufbuild/protobuf (quick start imports it)")
  process.stdout.write(problems.join(", "))
' "${install_words[@]:2}")
[ -z "$drift" ] || fatal "README.md's install line does not name: $drift"
(cd "$app" && npm init -y && npm pkg set type=module) >"$logs/init.log" 2>&1 \
  || { tail_log "$logs/init.log"; fatal "npm init failed"; }
if ! (cd "$app" && npm install "${install_args[@]}" --no-audit --no-fund) >"$logs/install.log" 2>&1; then
  tail_log "$logs/install.log" 40
  if grep -q ERESOLVE "$logs/install.log"; then
    fatal "README.md's install line does not resolve (ERESOLVE, above): $install_text"
  fi
  fatal "README.md's install line failed (above): $install_text"
fi
(cd "$app" && npm ls --all) >"$logs/ls.log" 2>&1 \
  || { grep -E 'invalid|missing|UNMET|ERR' "$logs/ls.log" | head -20 | show; fatal "npm ls: the installed tree is not valid (above)"; }
# One copy of each: two `effect`s do not share services, two protobuf runtimes do not share types.
for shared in effect @effect/platform @bufbuild/protobuf; do
  copies=$(cd "$app" && npm ls --all --parseable "$shared" | sort -u)
  [ "$(printf '%s\n' "$copies" | grep -c .)" -eq 1 ] || { printf '%s\n' "$copies" | show; fatal "more than one copy of $shared (above)"; }
done
(cd "$app" && npm install --save-dev "${APP_DEV_DEPS[@]}" --no-audit --no-fund) >"$logs/install-dev.log" 2>&1 \
  || { tail_log "$logs/install-dev.log"; fatal "npm install --save-dev ${APP_DEV_DEPS[*]} failed"; }
ok "${install_words[*]}"
echo "    installed: $(cd "$app" && npm ls --depth=0 --json | node -e '
  const deps = JSON.parse(require("fs").readFileSync(0, "utf8")).dependencies
  process.stdout.write(Object.entries(deps).map(([name, d]) => `${name}@${d.version}`).join(" "))
')"

# ---------------------------------------------------------------------------------------------
begin typecheck
readme_block "Quick start" ts >"$app/quickstart.ts"
[ -s "$app/quickstart.ts" ] || fatal "README.md has no \`\`\`ts block under '## Quick start'"
cp .ci/user-path/writer-batch.ts "$app/writer-batch.ts"
# skipLibCheck false: the declarations the package ships must compile in the user's project too.
cat >"$app/tsconfig.json" <<'EOF'
{
  "compilerOptions": {
    "target": "ES2022",
    "lib": ["ES2022"],
    "types": ["node"],
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "exactOptionalPropertyTypes": true,
    "noUncheckedIndexedAccess": true,
    "skipLibCheck": false,
    "noEmit": true
  },
  "files": ["quickstart.ts", "writer-batch.ts"]
}
EOF
if (cd "$app" && ./node_modules/.bin/tsc --noEmit -p tsconfig.json) >"$logs/tsc.log" 2>&1; then
  ok "README quick start and the bundled writer's program, strict NodeNext, skipLibCheck false"
else
  tail_log "$logs/tsc.log" 40
  failed "the README quick start does not compile in a new app (tsc errors above)"
fi

# ---------------------------------------------------------------------------------------------
begin servers
for _ in $(seq 600); do
  [ -f "$work/servers.env" ] && break
  kill -0 "$servers_pid" 2>/dev/null || { tail_log "$logs/servers.log"; fatal "the local servers exited (log above)"; }
  sleep 0.1
done
[ -f "$work/servers.env" ] || { tail_log "$logs/servers.log"; fatal "the local servers were not ready after 60 s"; }
ok "$(grep '^servers ready' "$logs/servers.log" | sed 's/^servers ready: //')"

# ---------------------------------------------------------------------------------------------
# The quick start runs as README.md has it, with no change: endpoints, region and credentials
# come from the environment (AWS_ENDPOINT_URL_KINESIS / _S3, AWS_REGION, AWS_ACCESS_KEY_ID,
# ...), and Kinesis is served over HTTP/2, the SDK's default transport (see servers.ts).
begin quickstart
if ! (cd "$app" && ./node_modules/.bin/esbuild quickstart.ts --format=esm --platform=node \
  --outfile=quickstart.mjs --log-level=warning) >"$logs/quickstart-build.log" 2>&1; then
  tail_log "$logs/quickstart-build.log"
  failed "esbuild could not transpile the quick start"
else
  quickstart_status=0
  (cd "$app" && with_local_aws timeout 60 node quickstart.mjs) >"$logs/quickstart.out" 2>"$logs/quickstart.err" \
    || quickstart_status=$?
  show "$logs/quickstart.out"
  if [ "$quickstart_status" -ne 0 ]; then
    tail_log "$logs/quickstart.err"
    if [ "$quickstart_status" -eq 124 ]; then failed "the quick start did not finish within 60 s"
    else failed "the quick start exited with status $quickstart_status (stderr above)"; fi
  elif ! grep -Eq '^[0-9]+ records in [0-9]+ call\(s\)$' "$logs/quickstart.out"; then
    tail_log "$logs/quickstart.err"
    failed "the quick start did not print 'N records in N call(s)'"
  else
    ok "$(grep -E '^[0-9]+ records in' "$logs/quickstart.out")"
  fi
  if grep -q NodeVersionSupportWarning "$logs/quickstart.err"; then
    echo "    note: the AWS SDK warns that its versions published after the first week of January 2027 require Node >= 22"
  fi
fi

# ---------------------------------------------------------------------------------------------
# The writer in ONE file, run where there is no node_modules: what a Lambda or a slim
# container gets. Batches of 8 records or more are compressed in worker threads.
bundle() { # SOURCE OUTPUT: esbuild from the app, with a metafile next to OUTPUT
  (cd "$app" && ./node_modules/.bin/esbuild "$1" --bundle --platform=node --format=esm --target=node20 \
    --outfile="$2" --metafile="$2.meta.json" --banner:js="$ESM_BANNER" --log-level=warning)
}
begin writer-bundle
if ! bundle writer-batch.ts "$run/writer.mjs" >"$logs/writer-build.log" 2>&1; then
  tail_log "$logs/writer-build.log"
  failed "esbuild could not bundle the writer"
else
  writer_status=0
  run_started=$(now_ms)
  (cd "$run" && with_local_aws timeout 60 node writer.mjs) >"$logs/writer.out" 2>&1 || writer_status=$?
  wall_ms=$(( $(now_ms) - run_started ))
  result=$(grep -E '^\{"records":' "$logs/writer.out" | tail -n 1 || true)
  batch_ms=$(printf '%s' "$result" | sed -n 's/.*"ms":\([0-9]*\).*/\1/p')
  missing_worker=$(grep -c "Cannot find module.*gzipWorker" "$logs/writer.out" || true)
  why=""
  if [ "$missing_worker" -gt 0 ]; then
    why=": its compression worker pool starts new URL(\"./gzipWorker.js\", import.meta.url), which is not in the bundle ($missing_worker failed worker starts: \"$(grep -o -m 1 "Cannot find module '[^']*'" "$logs/writer.out")\"), and it compresses on the calling thread only after the pool's start timeout"
  fi
  if [ "$writer_status" -ne 0 ] || [ -z "$batch_ms" ]; then
    tail_log "$logs/writer.out"
    if [ "$writer_status" -eq 124 ]; then failed "the bundled writer did not finish within 60 s$why"
    else failed "the bundled writer exited with status $writer_status, without a result (output above)$why"; fi
  elif [ "$batch_ms" -ge "$WRITER_LIMIT_MS" ]; then
    failed "the bundled writer took $batch_ms ms for a batch of 20 records (limit $WRITER_LIMIT_MS ms)$why"
  elif [ "$wall_ms" -ge $(( batch_ms + EXIT_SLACK_MS )) ]; then
    tail_log "$logs/writer.out"
    failed "the bundled writer's batch took $batch_ms ms but the process ran $wall_ms ms: something kept it from exiting"
  else
    ok "$result, process $wall_ms ms, bundle $(( $(stat -c %s "$run/writer.mjs") / 1024 )) KiB"
  fi
fi

# ---------------------------------------------------------------------------------------------
# A reader-only program: it must not carry the writer's metrics and Node platform layers.
begin reader-bundle
sed "s#\"cygnus-kinesis-writer/reader\"#\"$READER_ENTRY\"#" .ci/user-path/reader.ts >"$app/reader.ts"
grep -q "from \"$READER_ENTRY\"" "$app/reader.ts" || fatal ".ci/user-path/reader.ts no longer imports \"cygnus-kinesis-writer/reader\""
if ! bundle reader.ts "$run/reader.mjs" >"$logs/reader-build.log" 2>&1; then
  tail_log "$logs/reader-build.log"
  if grep -Eq "Could not resolve \"$READER_ENTRY\"|is not exported" "$logs/reader-build.log"; then
    subpath=.${READER_ENTRY#cygnus-kinesis-writer}
    failed "the package has no \"$subpath\" entry point exporting RecordReader (package.json \"exports\" map)"
  else
    failed "esbuild could not bundle a reader importing RecordReader from \"$READER_ENTRY\" (above)"
  fi
else
  reader_problems=()
  # 1. the metafile: which packages the bundle's code comes from.
  if ! node .ci/user-path/bundle-packages.mjs "$run/reader.mjs.meta.json" "${READER_FORBIDDEN[@]}" >"$logs/reader-packages.txt"; then
    reader_problems+=("its metafile lists $(sed -n 's/^forbidden: //p' "$logs/reader-packages.txt" | paste -sd, -)")
  fi
  # 2. the text: esbuild's "// node_modules/<package>/..." comments and strings of their code
  #    (prom-client's OpenMetrics content type, platform-node's "@effect/platform-node/..." ids).
  for pattern in 'node_modules/prom-client/' 'application/openmetrics-text' 'node_modules/@effect/platform-node' '"@effect/platform-node'; do
    if grep -qF -- "$pattern" "$run/reader.mjs"; then reader_problems+=("the bundle contains '$pattern'"); fi
  done
  # The checker checks itself on the writer bundle, which must hold both.
  if [ -f "$run/writer.mjs.meta.json" ] && node .ci/user-path/bundle-packages.mjs "$run/writer.mjs.meta.json" "${READER_FORBIDDEN[@]:0:2}" >/dev/null; then
    reader_problems+=("the metafile check found neither prom-client nor @effect/platform-node in the WRITER bundle: the check is broken")
  fi
  reader_result=$(cd "$run" && timeout 30 node reader.mjs 2>"$logs/reader.err" | tail -n 1) || true
  case "$reader_result" in
    '{"ok":true'*) ;;
    *) tail_log "$logs/reader.err"; reader_problems+=("it did not decode its records: ${reader_result:-no output}") ;;
  esac
  packages=$(grep -v '^forbidden: ' "$logs/reader-packages.txt" \
    | awk '{ printf "%s%s %d KiB", sep, $1, ($2 + 1023) / 1024; sep = ", " }')
  echo "    reader bundle (from \"$READER_ENTRY\"), $(( $(stat -c %s "$run/reader.mjs") / 1024 )) KiB: $packages"
  if [ "${#reader_problems[@]}" -gt 0 ]; then
    failed "a reader-only bundle from \"$READER_ENTRY\": $(printf '%s; ' "${reader_problems[@]}" | sed 's/; $//')"
  else
    ok "no ${READER_FORBIDDEN[*]}; $reader_result"
  fi
fi

# ---------------------------------------------------------------------------------------------
current=done
stop_servers
total_ms=$(( $(now_ms) - started ))
if [ "${#failures[@]}" -gt 0 ]; then
  echo "user-path: FAILED in $(( total_ms / 1000 )) s: ${failures[*]}" >&2
  exit 1
fi
echo "user-path: all ok in $(( total_ms / 1000 )) s"
