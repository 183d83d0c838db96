"""Stage: data. Raw teacher corpus -> canonical -> verified -> D_SFT / D_Pref (docs/design.md).

* ``sources.py``        read any corpus layout (file, folder, ``save_to_disk``); hub download
* ``normalize.py``      ``normalize()``: one canonical row per corpus row, rejects named
* ``schemas.py``        the Arrow schemas of the data files and their footer metadata keys
* ``io.py``             footer metadata, JSON lines (atomic, via ``redi.files``)
* ``verify_stage.py``   ``verify_shard()`` / ``gather()``: our Math-Verify label per generation
* ``config.py``         CurationConfig: every curation knob, its default (the paper's), validation
* ``curate.py``         ``curate()``: the funnel of named steps -> sft.jsonl, pref.jsonl, rejects
* ``curate_report.py``  the curation report (JSON dict + markdown)
* ``synthetic.py``      the offline synthetic teacher corpus (SynthConfig) of the embedded default
* ``cli.py``            ``redi data corpus | download | normalize | verify-shard | gather | curate``
"""
