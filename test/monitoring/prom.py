#!/usr/bin/env python3
"""Reads what test/monitoring/run.sh fetched: the exporter's /metrics text and
Prometheus' /api/v1/alerts JSON. Standard library only.

  prom.py value FILE NAME [label=value ...]   the value of the one sample of NAME
      whose labels include those given (label= : absent or empty); prints
      "none" or "several" otherwise
  prom.py type FILE NAME                      the family's # TYPE
  prom.py histogram FILE NAME [label=value ...]
      checks the histogram's buckets (ascending bounds, cumulative counts,
      +Inf = _count) and prints "count sum", or what is wrong
  prom.py families FILE PREFIX                the text of the families whose
      names start with PREFIX (for promtool check metrics)
  prom.py alerts FILE                         the firing alerts, one a line:
      "alertname label=value ..." (database, subscription, consumer, endpoint), sorted
"""
import json
import math
import re
import sys

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$')
LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')


def parse(path):
    samples, types = [], {}
    with open(path) as f:
        for line in f:
            line = line.rstrip('\n')
            if line.startswith('# TYPE '):
                _, _, name, kind = line.split(' ', 3)
                types[name] = kind
                continue
            if not line or line.startswith('#'):
                continue
            m = SAMPLE.match(line)
            if not m:
                continue
            labels = {}
            for lm in LABEL.finditer(m.group(2) or ''):
                labels[lm.group(1)] = bytes(lm.group(2), 'utf-8').decode('unicode_escape')
            samples.append((m.group(1), labels, float(m.group(3))))
    return samples, types


def want(args):
    out = {}
    for a in args:
        k, _, v = a.partition('=')
        out[k] = v
    return out


def matches(labels, wanted):
    return all(labels.get(k, '') == v for k, v in wanted.items())


def fmt(v):
    return str(int(v)) if v == int(v) else repr(v)


def main(argv):
    cmd, path = argv[1], argv[2]
    if cmd == 'alerts':
        with open(path) as f:
            data = json.load(f)
        lines = []
        for a in data['data']['alerts']:
            if a.get('state') != 'firing':
                continue
            ls = a['labels']
            parts = [ls['alertname']] + ['%s=%s' % (k, ls[k]) for k in
                                         ('database', 'subscription', 'consumer', 'endpoint') if ls.get(k)]
            lines.append(' '.join(parts))
        print('\n'.join(sorted(lines)))
        return 0
    if cmd == 'families':
        prefix = argv[3]
        with open(path) as f:
            for line in f:
                name = line.split(' ')[2] if line.startswith('# ') else re.split(r'[{\s]', line, 1)[0]
                if name.startswith(prefix):
                    sys.stdout.write(line)
        return 0
    samples, types = parse(path)
    name = argv[3]
    if cmd == 'type':
        print(types.get(name, 'none'))
        return 0
    wanted = want(argv[4:])
    if cmd == 'value':
        found = [v for n, ls, v in samples if n == name and matches(ls, wanted)]
        print('none' if not found else 'several' if len(found) > 1 else fmt(found[0]))
        return 0
    if cmd == 'histogram':
        buckets = sorted(((float(ls['le']), v) for n, ls, v in samples
                          if n == name + '_bucket' and matches(ls, wanted)), key=lambda b: b[0])
        counts = [v for n, ls, v in samples if n == name + '_count' and matches(ls, wanted)]
        sums = [v for n, ls, v in samples if n == name + '_sum' and matches(ls, wanted)]
        if len(counts) != 1 or len(sums) != 1 or not buckets:
            print('no single histogram (%d counts, %d sums, %d buckets)' % (len(counts), len(sums), len(buckets)))
            return 0
        if buckets[-1][0] != math.inf:
            print('no +Inf bucket')
        elif buckets[-1][1] != counts[0]:
            print('+Inf bucket %s is not the count %s' % (fmt(buckets[-1][1]), fmt(counts[0])))
        elif any(b[1] > a[1] for a, b in zip(buckets[1:], buckets)):
            print('counts not cumulative')
        elif len(buckets) < 3:
            print('only %d buckets' % len(buckets))
        else:
            print('%s %s' % (fmt(counts[0]), repr(sums[0])))
        return 0
    print('unknown command ' + cmd, file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(main(sys.argv))
