#!/usr/bin/env bash
# Crash soak: runs the SIGKILL crash-safety test with many kills (default 300) against one data directory.
# Each round starts `factum import`, feeds single events and 3-event batches, kills it with SIGKILL at a random
# moment, then checks every acknowledged event (version and position), that no batch is half-written, that
# `verify` passes and that appends continue at the right versions.
#   scripts/crash-soak.sh [KILLS] [SEED]
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-300}"
export FACTUM_CRASH_KILLS="$kills"
[ -n "${2:-}" ] && export FACTUM_CRASH_SEED="$2"
dotnet build tests/Factum.Cli.Tests -c Release -nologo -clp:ErrorsOnly
start=$(date +%s)
dotnet test tests/Factum.Cli.Tests -c Release --no-build --nologo --filter "FullyQualifiedName~CrashSafetyTests" --logger "console;verbosity=normal"
echo "crash soak: ${kills} SIGKILLs survived in $(( $(date +%s) - start ))s"
