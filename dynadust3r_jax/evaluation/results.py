"""Where the evaluation job keeps its results: one JSON per finished sequence (so that a crashed run
resumes), results.json (everything) and results.md (the aggregate beside the papers' numbers).

  WORKDIR/sequences/settings.json   the settings the records were made with (a rerun must match them)
  WORKDIR/sequences/<name>.json     one sequence's record ('/' in a name becomes '__')
  WORKDIR/results.json              {'benchmark', 'checkpoint', 'settings', 'aggregate', 'sequences', 'skipped'}
  WORKDIR/results.md
"""
import json
import math
import os

from dynadust3r_jax.evaluation.papers import HEADLINE, PAPERS

SEQUENCES_DIR = 'sequences'
SETTINGS_FILE = 'settings.json'


def write_json(path: str, obj):
  """Written aside and moved into place: a kill leaves the old file or the new one, never half of one."""
  tmp = path + '.partial'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=1, sort_keys=True)
  os.replace(tmp, path)


class SequenceStore:
  """The finished sequences of one evaluation workdir."""

  def __init__(self, workdir: str, settings: dict):
    self.dir = os.path.join(workdir, SEQUENCES_DIR)
    os.makedirs(self.dir, exist_ok=True)
    path = os.path.join(self.dir, SETTINGS_FILE)
    settings = json.loads(json.dumps(settings))  # as it reads back (tuples become lists)
    if os.path.exists(path):
      with open(path) as f:
        old = json.load(f)
      changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
      if changed:
        raise ValueError(f'{workdir}: holds results made with other settings (differing: {changed}); use another '
                         f'--workdir, or delete {self.dir} to start again')
    else:
      write_json(path, settings)

  def _path(self, name: str) -> str:
    return os.path.join(self.dir, name.replace('/', '__') + '.json')

  def get(self, name: str) -> dict | None:
    if not os.path.exists(self._path(name)):
      return None
    with open(self._path(name)) as f:
      return json.load(f)

  def put(self, name: str, record: dict):
    write_json(self._path(name), record)


def _cell(metric: str, value) -> str:
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return '–'
  return f'{100 * value:.2f}' if metric.startswith('delta') else f'{value:.4f}'


def _header(metric: str) -> str:
  return f'{metric} (%)' if metric.startswith('delta') else metric


def markdown(results: dict) -> str:
  """results.md: the aggregate row, the papers' rows under it, and the settings."""
  bench = results['benchmark']
  metrics = [m for m in HEADLINE[bench] if m in results['aggregate'] or any(m in r for _, _, r in PAPERS[bench])]
  lines = [f'# {bench}: {results["checkpoint"]}', '',
           f'{results["counts"]["evaluated"]} sequences evaluated, {results["counts"]["skipped"]} skipped '
           f'({results["counts"].get("pairs", "-")} pairs).', '',
           '| method | source | ' + ' | '.join(_header(m) for m in metrics) + ' |',
           '|---|---|' + '---|' * len(metrics),
           '| **this checkpoint** | this run | ' + ' | '.join(_cell(m, results['aggregate'].get(m)) for m in metrics)
           + ' |']
  for method, source, values in PAPERS[bench]:
    lines.append(f'| {method} | {source} | ' + ' | '.join(_cell(m, values.get(m)) for m in metrics) + ' |')
  lines += ['', 'Papers\' numbers are secondary transcriptions (spec evaluation.md); protocols differ where the '
            'source says so.', '', '## Settings', '', '```json', json.dumps(results['settings'], indent=1,
                                                                                sort_keys=True), '```', '']
  return '\n'.join(lines)


def write_results(workdir: str, results: dict) -> tuple[str, str]:
  json_path, md_path = os.path.join(workdir, 'results.json'), os.path.join(workdir, 'results.md')
  write_json(json_path, results)
  with open(md_path + '.partial', 'w') as f:
    f.write(markdown(results))
  os.replace(md_path + '.partial', md_path)
  return json_path, md_path
