"""DynaDUSt3R's four motion outputs, one owner for their names: the network computes them (model/dyna_dust3r.py),
the losses and the metrics iterate them, the inference turns them into scene flow, the training batch holds
their targets (target_<name>, valid_<name>); view v's prediction is motion_<name> (with conf_<name>).

query_times = [t_mid, t_view2 = 1, t_view1 = 0] per pair: l2m moves view 1's pixels from time 0 to t_mid,
l2r to time 1, r2m view 2's from time 1 to t_mid, r2l to time 0."""
# name -> (the view its pixels come from, the column of query_times it moves them to)
MOTION_QUERIES = {'l2m': (1, 0), 'l2r': (1, 1), 'r2m': (2, 0), 'r2l': (2, 2)}
# (name, view) as the losses and the metrics iterate them
MOTION_TERMS = tuple((name, view) for name, (view, _) in MOTION_QUERIES.items())


def view_queries(view: int) -> tuple:
  """(name, query_times column) of the motion outputs of view 1 or 2."""
  return tuple((name, col) for name, (v, col) in MOTION_QUERIES.items() if v == view)
