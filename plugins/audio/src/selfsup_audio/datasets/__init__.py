"""The plugin's datasets: the synthesised keyword-spotting set (the offline default)
and your own folders of audio; ``views.py`` holds the views both declare."""
