"""`make run` and `.ci/run` enable RabbitMQ's MQTT plugin when it is off, saying so (runtime.mqtt), on a port of
its own that the broker's next boot keeps; on, it is left alone. The broker's commands are stood in for here."""
import subprocess

import pytest

from runtime import mqtt


class Broker:
    def __init__(self, enabled):
        self.enabled = enabled
        self.commands = []

    def __call__(self, *args):
        self.commands.append(args)
        if args[:2] == ("rabbitmq-plugins", "list"):
            return subprocess.CompletedProcess(args, 0, "rabbitmq_mqtt\n" if self.enabled else "\n", "")
        if args[:2] == ("rabbitmq-plugins", "enable"):
            self.enabled = True
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def broker(monkeypatch, tmp_path):
    monkeypatch.setattr(mqtt.shutil, "which", lambda name: f"/usr/sbin/{name}")
    monkeypatch.setattr(mqtt, "ADVANCED_CONFIG", str(tmp_path / "advanced.config"))
    stand_in = Broker(enabled=False)
    monkeypatch.setattr(mqtt, "_run", stand_in)
    return stand_in


def test_an_off_plugin_is_enabled_on_its_port_and_said_so(broker, tmp_path):
    said = []
    assert mqtt.ensure_mqtt_plugin(1884, said.append) is True
    assert said == ["stratum: RabbitMQ's MQTT plugin is off: enabling it (rabbitmq-plugins enable rabbitmq_mqtt), "
                    "MQTT on 127.0.0.1:1884"]
    evaluated, enabled = broker.commands[1], broker.commands[2]
    assert evaluated[:2] == ("rabbitmqctl", "eval") and '{"127.0.0.1", 1884}' in evaluated[2]
    assert enabled == ("rabbitmq-plugins", "enable", "rabbitmq_mqtt")
    assert '[{rabbitmq_mqtt, [{tcp_listeners, [{"127.0.0.1", 1884}]}]}].' in (tmp_path / "advanced.config").read_text()


def test_an_enabled_plugin_is_left_alone(broker):
    broker.enabled = True
    said = []
    assert mqtt.ensure_mqtt_plugin(1884, said.append) is True
    assert said == [] and [c[:2] for c in broker.commands] == [("rabbitmq-plugins", "list")]


def test_an_existing_advanced_config_is_never_overwritten(broker, tmp_path):
    (tmp_path / "advanced.config").write_text("[].\n")
    said = []
    mqtt.ensure_mqtt_plugin(1884, said.append)
    assert (tmp_path / "advanced.config").read_text() == "[].\n"
    assert any("sets no MQTT listener" in line for line in said)


def test_no_broker_tools_here_is_said_not_raised(monkeypatch):
    monkeypatch.setattr(mqtt.shutil, "which", lambda name: None)
    said = []
    assert mqtt.ensure_mqtt_plugin(1884, said.append) is False and "rabbitmq-plugins enable" in said[0]
