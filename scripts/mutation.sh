#!/usr/bin/env bash
# Mutation testing with Stryker.NET (dotnet-stryker, pinned in .config/dotnet-tools.json) over the code that guards
# stored bytes and accepted input: the append rules, the strict JSON and id checks, metadata encoding, the checksum,
# the page reader and verify. Reports land in artifacts/mutation/<project>/.
#   scripts/mutation.sh [core|sqlite|all]        (default all; each takes tens of minutes on 2 cores)
set -euo pipefail
cd "$(dirname "$0")/.."
which="${1:-all}"
dotnet tool restore >/dev/null
run() { # <test project dir> <project file> <output name> <mutate globs...>
  local tests="$1" project="$2" name="$3"; shift 3
  local args=()
  for m in "$@"; do args+=(--mutate "$m"); done
  (cd "$tests" && dotnet stryker --project "$project" "${args[@]}" --concurrency 1 \
     --reporter json --reporter html --reporter progress --output "../../artifacts/mutation/$name")
}
if [ "$which" = core ] || [ "$which" = all ]; then
  run tests/Factum.Tests Factum.csproj core \
    "**/Store/AppendRules.cs" "**/Serialization/JsonText.cs" "**/Serialization/MetadataCodec.cs" \
    "**/Model/EventData.cs" "**/Model/EventTypeName.cs" "**/Model/StreamId.cs" "**/Model/ExpectedVersion.cs"
fi
if [ "$which" = sqlite ] || [ "$which" = all ]; then
  run tests/Factum.Sqlite.Tests Factum.Sqlite.csproj sqlite \
    "**/EventChecksum.cs" "**/EventPageQuery.cs" "**/SqliteStoreVerifier.cs" "**/SqliteSchema.cs" "**/EventInsertStatement.cs"
fi
