# Sourced by the benchmarks (from the repository root): which build to measure.
# HANGAR_BENCH_BIN=DIR measures the hangard in DIR instead of building this tree (to compare two
# builds side by side in one run); HANGAR_BENCH_PLUGINS=DIR takes the plugins from DIR
# (default: the same folder). Sets `bin` and `plugins`.
if [ -n "${HANGAR_BENCH_BIN:-}" ]; then
    bin=$HANGAR_BENCH_BIN
else
    swift build -c release --product hangard >/dev/null
    swift build -c release >/dev/null
    bin=$(swift build -c release --show-bin-path)
fi
plugins=${HANGAR_BENCH_PLUGINS:-$bin}
