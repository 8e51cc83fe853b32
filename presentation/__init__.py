"""What the API and the pages show: the response models (models.py), the serializers that
shape store documents into them (serializers.py) and the OpenAPI document (openapi.py).

Layers: server → handlers, live, auth → presentation → engine → store → core. This package uses
store and core, never handlers or live.
"""
