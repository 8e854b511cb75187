#!/bin/sh
# @PROGRAM@ (vmsb): runs lib/@PROGRAM@.mjs with the Node runtime this package carries, found from
# this script's own location (symlinks resolved), so the tree works from any prefix. A `node` on
# PATH is never used.
self=$(readlink -f -- "$0") || exit 127
vmsb=${self%/*/*}/lib/vmsb

# Node options from the environment would change what the programs run or load: drop them.
unset NODE_OPTIONS NODE_PATH NODE_EXTRA_CA_CERTS NODE_ICU_DATA NODE_REPL_EXTERNAL_MODULE \
  NODE_V8_COVERAGE NODE_COMPILE_CACHE NODE_PRESERVE_SYMLINKS NODE_PENDING_DEPRECATION \
  NODE_REDIRECT_WARNINGS NODE_DEBUG_NATIVE

# Runtime and V8 flags live in one place, lib/vmsb/node-flags: lines of "<program> <flags>", where
# "*" means every program.
set -f
flags=
while read -r program options; do
  case $program in
  '*' | @PROGRAM@) flags="$flags $options" ;;
  esac
done <"$vmsb/node-flags"

# Second stage of varstored (below): vmsb-launch has entered the namespaces and runs this script
# again in node's place, so that Node gets its flags on the command line (V8 flags such as
# --lite-mode are refused in NODE_OPTIONS).
if [ "${VMSB_LAUNCH_STAGE-}" = node ]; then
  unset VMSB_LAUNCH_STAGE
  # Node starts from the daemon's start-up snapshot (lib/@PROGRAM@.blob, made by bin/node when the
  # package was built): its modules are already evaluated in it. Node refuses a blob made with other
  # V8 options, so it is used only while node-flags gives the options it was made with (the line of
  # lib/@PROGRAM@.blob.flags); otherwise Node starts from the bundle. The snapshot holds the bundle's
  # code, so the bundle's name ($1) is replaced by the snapshot's script.
  words() { flat="$*"; }
  words $flags
  if [ -f "$vmsb/lib/@PROGRAM@.blob" ] && read -r built <"$vmsb/lib/@PROGRAM@.blob.flags" && [ "$built" = "$flat" ]; then
    shift
    exec "$vmsb/bin/node" $flags --snapshot-blob "$vmsb/lib/@PROGRAM@.blob" "$vmsb/lib/@PROGRAM@-snapshot.cjs" "$@"
  fi
  exec "$vmsb/bin/node" $flags "$@"
fi

# The programs name themselves as invoked (the C tools print argv[0]); the bundle takes this back.
export VMSB_ARGV0="$0"

# Steps that must run before Node go in front of the runtime.
case @PROGRAM@ in
varstored)
  # vmsb-launch (packages/xen/native/launch.c) enters the daemon's namespaces under --depriv, then
  # execs its first argument with the script and the options (same pid): this script again, whose
  # second stage (above) starts node with the flags. The daemon itself refuses --depriv when it is
  # not in the launcher's namespaces, so the stage variable cannot be used to skip them.
  export VMSB_LAUNCH_STAGE=node
  exec "$vmsb/lib/native/vmsb-launch" "$self" "$vmsb/lib/@PROGRAM@.mjs" "$@"
  ;;
esac
exec "$vmsb/bin/node" $flags "$vmsb/lib/@PROGRAM@.mjs" "$@"
