"""PySpark programs run by spark-submit for the merge, encode and predict stages."""
