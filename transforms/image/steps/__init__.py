"""One small function per step, each in the module named after it. A step takes the
``Work`` of one transform and updates it; ``transforms/image/pipeline.py`` says the order."""
