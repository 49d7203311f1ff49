"""The bundled simulator: a device model, an electrode–skin load, a recorder and fault plans.

``model`` (the discrete-event stimulator), ``body`` (impedance and compliance), ``recorder``
(what was delivered), ``faults`` (declarative fault plans) and ``devices/`` (protocol
emulations on top of the model). Nothing here is imported by ``import emsctl``; the ``sim``
driver imports it when a simulated device is opened.
"""
