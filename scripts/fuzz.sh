#!/usr/bin/env bash
# Runs Factum's fuzz targets for a while from random seeds (./test.sh runs each briefly from fixed seeds).
#   scripts/fuzz.sh <target|all> [seconds per target, default 60]
# Targets: import-line json-text stored-metadata message-envelope schema-compat catalog-yaml stored-row
#          roundtrip (any accepted append reads back byte for byte) ops (verify passes after any operations)
# A failing input is saved under artifacts/fuzz/<target>/ with the seed that replays it
# (FACTUM_FUZZ_REPLAY=<seed> scripts/fuzz.sh <target>); add it to tests/Factum.Fuzz.Tests/corpus/<target>/ once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-all}"
seconds="${2:-60}"
declare -A tests=(
  [import-line]=Fuzz_import_line [json-text]=Fuzz_json_text [stored-metadata]=Fuzz_stored_metadata
  [message-envelope]=Fuzz_message_envelope [schema-compat]=Fuzz_schema_compatibility [catalog-yaml]=Fuzz_catalog_yaml
  [stored-row]=Fuzz_stored_row [roundtrip]=Any_accepted_append_is_readable_back_byte_for_byte
  [ops]=Verify_passes_after_any_sequence_of_operations
)
if [ "$target" = all ]; then names=("${!tests[@]}"); else
  [ -n "${tests[$target]:-}" ] || { echo "unknown target '$target'; one of: ${!tests[*]} all" >&2; exit 2; }
  names=("$target")
fi
dotnet build tests/Factum.Fuzz.Tests -c Release -nologo -clp:ErrorsOnly
mkdir -p artifacts/fuzz
start=0; [ -f artifacts/fuzz/reports.jsonl ] && start=$(wc -l < artifacts/fuzz/reports.jsonl)
status=0
for name in "${names[@]}"; do
  echo "== $name: ${seconds}s"
  FACTUM_FUZZ_SECONDS="$seconds" dotnet test tests/Factum.Fuzz.Tests -c Release --no-build --nologo \
    --filter "FullyQualifiedName~${tests[$name]}" --logger "console;verbosity=normal" > "artifacts/fuzz/$name.log" 2>&1 || status=1
  grep -E "executions|Passed |Failed |FuzzFailure|Error Message" -A2 "artifacts/fuzz/$name.log" | head -20
done
echo "== reports (artifacts/fuzz/reports.jsonl)"
tail -n +"$((start + 1))" artifacts/fuzz/reports.jsonl 2>/dev/null || true
exit $status
