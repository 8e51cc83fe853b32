import pytest
import tornado.websocket
from tests.live.conftest import ws_url

@pytest.fixture
def live_settings():
    return {"ws_max_message_size": 65536}

@pytest.mark.gen_test(timeout=10)
async def test_dbg(base_url, store):
    c = await tornado.websocket.websocket_connect(ws_url(base_url), connect_timeout=3)
    c.close()
