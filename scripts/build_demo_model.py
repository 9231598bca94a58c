"""Fine-tune the offline demo NER model into model_related_data/ and score it (cached: rebuilt when an input changes).

The trainer is the demo_model package (demo_model/build.py, its corpus and data files in demo_model/); run this
with the project's virtual environment, where that package is installed:

    .venv/bin/python scripts/build_demo_model.py                  # build unless up to date
    .venv/bin/python scripts/build_demo_model.py --force          # rebuild
    .venv/bin/python scripts/build_demo_model.py --evaluate-only  # score the existing checkpoint
"""

from demo_model.build import main

if __name__ == "__main__":
    raise SystemExit(main())
