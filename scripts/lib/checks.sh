# Sourced by the check scripts (scripts/test-chart.sh,
# scripts/test-monitoring.sh): `check NAME CMD...` runs CMD and prints
# "ok   NAME", or "FAIL NAME" followed by CMD's output indented, counting
# into $passed and $failed.
passed=0
failed=0
check() {
    local name="$1" out
    shift
    if out="$("$@" 2>&1)"; then
        passed=$((passed + 1))
        echo "ok   $name"
    else
        failed=$((failed + 1))
        echo "FAIL $name"
        sed 's/^/     /' <<<"$out"
    fi
}
