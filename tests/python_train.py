"""Trains a LightGBM alert scorer in Python on the matrix exported by `pipeline features`,
the way a notebook would, and writes its predictions for every row.

usage: python_train.py MATRIX.parquet MODEL_OUT.txt PREDICTIONS_OUT.parquet
"""
import sys

import lightgbm as lgb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

matrix_path, model_out, preds_out = sys.argv[1:4]
m = pq.read_table(matrix_path).to_pandas()
features = [c for c in m.columns if c not in ("processing_date", "alert_id", "address", "label", "label_weight")]
train = m[m["label"].notna()]
ds = lgb.Dataset(train[features].to_numpy(dtype=np.float64), label=train["label"], weight=train["label_weight"],
                 feature_name=features, free_raw_data=False)
booster = lgb.train({"objective": "binary", "num_leaves": 15, "learning_rate": 0.1, "verbosity": -1, "seed": 3,
                     "deterministic": True, "num_threads": 1}, ds, num_boost_round=40)
booster.save_model(model_out)
pred = booster.predict(m[features].to_numpy(dtype=np.float64))
pq.write_table(pa.table({"processing_date": m["processing_date"], "alert_id": m["alert_id"], "pred": pred}), preds_out)
print(f"trained on {len(train)} rows, {len(features)} features")
