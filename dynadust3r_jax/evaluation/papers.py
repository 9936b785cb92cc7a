"""The papers' numbers that results.md puts beside ours (spec evaluation.md §3, §4.5, §6, §7, §8.3).

All are secondary transcriptions of the tables (the spec names each source); units are those of our
results: metres for EPE3D, ATE and RPE-trans, degrees for RPE-rot, fractions for AbsRel and every δ
(results.md prints δ in %), percent for RRA / RTA / mAA. Each row: (method, source and protocol, metrics).
"""

PAPERS = {
    'stereo4d': [
        ('DynaDUSt3R (Stereo4D)', 'Stereo4D Tables 1-2', {'epe3d': 0.1110, 'delta_0.05': 0.6507, 'delta_0.10': 0.7518,
                                                           'abs_rel': 0.1032, 'delta_1.25': 0.8793}),
        ('DynaDUSt3R (PointOdyssey)', 'Stereo4D Table 1', {'epe3d': 0.6191, 'delta_0.05': 0.1161, 'delta_0.10': 0.2025}),
        ('MonST3R', 'Stereo4D Table 2', {'abs_rel': 0.1939, 'delta_1.25': 0.7256}),
        ('DUSt3R', 'Stereo4D Table 2', {'abs_rel': 0.2696, 'delta_1.25': 0.6777}),
    ],
    'adt': [
        ('DynaDUSt3R (Stereo4D)', 'Stereo4D, ADT', {'epe3d': 0.1231, 'delta_0.05': 0.5198, 'delta_0.10': 0.6520}),
        ('DynaDUSt3R (PointOdyssey)', 'Stereo4D, ADT', {'epe3d': 0.3126, 'delta_0.05': 0.0856, 'delta_0.10': 0.1803}),
    ],
    'dynamic_replica': [],  # no DUSt3R-family numbers are published (spec §5.7)
    'bonn': [
        ('DynaDUSt3R (Stereo4D)', 'Stereo4D Table 2, pair protocol unknown', {'abs_rel': 0.0653, 'delta_1.25': 0.9602}),
        ('MonST3R', 'MonST3R Table 2, scale & shift', {'abs_rel': 0.063, 'delta_1.25': 0.964}),
        ('DUSt3R-GA', 'CUT3R Table 7, scale & shift', {'abs_rel': 0.156, 'delta_1.25': 0.831}),
        ('MonST3R-GA', 'CUT3R Table 7, scale & shift', {'abs_rel': 0.066, 'delta_1.25': 0.964}),
        ('DUSt3R-GA', 'CUT3R Table 2, per-sequence scale', {'abs_rel': 0.155, 'delta_1.25': 0.833}),
    ],
    'sintel': [
        ('MonST3R', 'MonST3R Tables 2-3, scale & shift', {'abs_rel': 0.335, 'delta_1.25': 0.585, 'ate': 0.108,
                                                          'rpe_trans': 0.042, 'rpe_rot': 0.732}),
        ('DUSt3R-GA', 'CUT3R Tables 3, 7, scale & shift', {'abs_rel': 0.531, 'delta_1.25': 0.512, 'ate': 0.417,
                                                           'rpe_trans': 0.250, 'rpe_rot': 5.796}),
        ('MonST3R-GA', 'CUT3R Tables 3, 7, scale & shift', {'abs_rel': 0.333, 'delta_1.25': 0.590, 'ate': 0.111,
                                                            'rpe_trans': 0.044, 'rpe_rot': 0.869}),
        ('DUSt3R-GA', 'CUT3R Table 2, per-sequence scale', {'abs_rel': 0.656, 'delta_1.25': 0.452}),
    ],
    'co3d': [
        ('DUSt3R-512 w/ GA', 'DUSt3R Table 2', {'RRA@15': 96.2, 'RTA@15': 86.8, 'mAA@30': 76.7}),
        ('DUSt3R-512 w/ PnP', 'DUSt3R Table 2', {'RRA@15': 94.3, 'RTA@15': 88.4, 'mAA@30': 77.2}),
        ('PoseDiffusion', 'DUSt3R Table 2', {'RRA@15': 80.5, 'RTA@15': 79.8, 'mAA@30': 66.5}),
    ],
}

# The metrics results.md shows per benchmark, in this order.
HEADLINE = {
    'stereo4d': ('epe3d', 'delta_0.05', 'delta_0.10', 'abs_rel', 'delta_1.25'),
    'adt': ('epe3d', 'delta_0.05', 'delta_0.10', 'abs_rel', 'delta_1.25'),
    'dynamic_replica': ('epe3d', 'delta_0.05', 'delta_0.10', 'abs_rel', 'delta_1.25'),
    'bonn': ('abs_rel', 'delta_1.25'),
    'sintel': ('abs_rel', 'delta_1.25', 'ate', 'rpe_trans', 'rpe_rot'),
    'co3d': ('RRA@15', 'RTA@15', 'mAA@30'),
}
