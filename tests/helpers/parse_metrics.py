#!/usr/bin/python3
"""Parses Prometheus text from stdin with the real parser (Debian's
python3-prometheus-client) and prints one sample a line, sorted:
NAME{label="value",...} VALUE, labels sorted by name. Exits 1 (message on
stderr) if the text does not parse."""
import sys

from prometheus_client.parser import text_string_to_metric_families


def main():
    text = sys.stdin.read()
    try:
        lines = []
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join('%s="%s"' % (k, s.labels[k]) for k in sorted(s.labels))
                value = s.value
                shown = str(int(value)) if float(value).is_integer() else repr(value)
                lines.append("%s{%s} %s" % (s.name, labels, shown))
    except Exception as e:  # the parser raises ValueError and others
        print("parse_metrics: %s" % e, file=sys.stderr)
        return 1
    for line in sorted(lines):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
