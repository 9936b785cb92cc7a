"""DynaDUSt3R's four motion targets as the losses and the metrics iterate them (here so that neither imports the
other): (target name, view it starts from); the batch holds target_<name> and valid_<name>, view v's
prediction motion_<name>."""
MOTION_TERMS = (('l2m', 1), ('l2r', 1), ('r2m', 2), ('r2l', 2))
