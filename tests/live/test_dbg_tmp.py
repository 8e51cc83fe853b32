import pytest, asyncio
from tests.live.conftest import Subscriber

@pytest.fixture
def live_settings():
    return {"ws_max_message_size": 1024}

@pytest.mark.gen_test(timeout=10)
async def test_dbg(base_url, store, api):
    print(await api.get("/ws/jobs/updates/", headers={"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}))
