#!/usr/bin/env bash
# Runs every test of Shepherd on a fresh machine: restores, builds, and runs the whole suite.
# Services the tests need are installed and started here (and stopped on exit), never assumed.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v dotnet >/dev/null 2>&1; then
  echo "error: the .NET 10 SDK is required (https://dot.net); 'dotnet' is not on PATH." >&2
  exit 1
fi

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

dotnet build Shepherd.slnx -c Release -warnaserror --nologo -v quiet
dotnet test Shepherd.slnx -c Release --no-build --nologo "$@"
