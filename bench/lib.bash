# Shared by the bench scripts (sourced after they cd to the project root).

# stdin: numbers, one a line; prints their median, or "none" when there are none.
median() {
	sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "none"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# A B: a / b to two decimals, or n/a when either is missing ("none") or b is not above 0.
ratio() {
	awk -v a="$1" -v b="$2" 'BEGIN { if (a ~ /^[0-9.eE+-]+$/ && b ~ /^[0-9.eE+-]+$/ && b + 0 > 0) printf "%.2f", a / b; else print "n/a" }'
}
