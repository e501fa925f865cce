"""The catalogue's URL map is built when the gateway's container starts, not by its first catalogue request."""
from nameko.containers import ServiceContainer

from gateway import routing
from gateway.service import GatewayService, Routes


def test_the_gateway_container_builds_the_url_map_at_setup():
    routing.url_map.cache_clear()
    container = ServiceContainer(GatewayService, {"AMQP_URI": "memory://"})
    (routes,) = [d for d in container.dependencies if isinstance(d, Routes)]
    assert routing.url_map.cache_info().currsize == 0
    routes.setup()
    assert routing.url_map.cache_info().currsize == 1
    assert routing.match("/order/")[0] == routing.Route("collection", "order")
