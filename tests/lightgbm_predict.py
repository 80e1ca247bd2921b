"""Cross-check: Python LightGBM's predict on the exported matrix equals the pipeline's scores.

usage: lightgbm_predict.py MODEL.txt MATRIX.parquet OUTPUT_ROOT
Prints max_abs_diff=<value> and exits non-zero if any score differs.
"""
import glob
import json
import os
import sys

import lightgbm as lgb
import numpy as np
import pyarrow.parquet as pq

model_path, matrix_path, out_root = sys.argv[1:4]
meta = json.load(open(os.path.splitext(model_path)[0] + ".json"))
booster = lgb.Booster(model_file=model_path)
m = pq.read_table(matrix_path).to_pandas()
pred = booster.predict(m[meta["feature_names"]].to_numpy(dtype=np.float64))
expected = dict(zip(zip(m["processing_date"], m["alert_id"]), pred))
diff = 0.0
n = 0
for path in glob.glob(os.path.join(out_root, "*", "*", "*", "alert_scores.parquet")):
    date = path.split(os.sep)[-3]
    s = pq.read_table(path).to_pandas()
    for aid, score in zip(s["alert_id"], s["score"]):
        diff = max(diff, abs(score - expected[(date, aid)]))
        n += 1
print(f"compared={n} max_abs_diff={diff:g} lightgbm={lgb.__version__}")
sys.exit(0 if n == len(m) and diff == 0.0 else 1)
