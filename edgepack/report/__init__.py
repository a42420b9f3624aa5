"""The build report: typed records (model.py) and their renderings (render.py)."""
