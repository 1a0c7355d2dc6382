"""The API's routes, one module per group of endpoints; ``dnc.api.app`` mounts them.
Routes stay thin: they validate, authorise and call the services beside them in
``dnc.api`` (``writes``, ``erasures``, ``audience``, ``imports``)."""
