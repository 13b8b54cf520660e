"""The demo's chaos panel and the servers it breaks (``make demo`` runs it: examples/demo.py).

==============  ==============================================================
``stack``       :class:`Demo`: the asset origin, a mirror and the example app's
                backend with the panel, in one process
``control``     :class:`ChaosControl`: what each switch and button does, the
                live state, the last incident reports
``switches``    the switches, with what each does and what to watch
``panel``       the panel at ``/_demo/`` and its JSON API
``faults``      :class:`AssetFaults`: corrupted, slow and deleted files
``servers``     :class:`Listener`: uvicorn servers that stop and start again
``releases``    the demo's copy of the front end, its versions, ``unblank build``
``process``     the demo as a child process, for tests and the screenshot script
``static/``     the panel's page, script and style, the offline service worker
==============  ==============================================================
"""
