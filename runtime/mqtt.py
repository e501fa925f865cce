"""RabbitMQ's MQTT plugin, through which machines (or an edge bridge) publish their status reports (DESIGN.md
"Devices"; services.capture.telemetry): `make run` and `.ci/run` call `ensure_mqtt_plugin` and it enables
`rabbitmq_mqtt` when it is off, saying so.

The plugin listens on STRATUM_MQTT_PORT (1884 by default, on 127.0.0.1): 1883, MQTT's registered port, is often held
by another broker on a developer's machine (Mosquitto is on this project's). The port is set in the running node
before the plugin starts (`rabbitmqctl eval`) and kept for the broker's next boot in its advanced.config, written
only when there is none: a plugin that cannot bind its port at boot stops the whole broker from starting. The
plugin maps MQTT topics onto the `amq.topic` exchange of the vhost the client names (`vhost:user` as the MQTT user
name; the default vhost otherwise), `/` becoming `.`.

    python -m runtime.mqtt    # enable the plugin if it is off (a no-op when it is on)
"""
import os
import shutil
import subprocess

PLUGIN = "rabbitmq_mqtt"
DEFAULT_PORT = 1884
ADVANCED_CONFIG = os.environ.get("RABBITMQ_ADVANCED_CONFIG_FILE", "/etc/rabbitmq/advanced.config")


def mqtt_port(config=None):
    return int((config or os.environ).get("STRATUM_MQTT_PORT") or DEFAULT_PORT)


def _run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120)


def plugin_enabled():
    """True / False, or None when this machine has no rabbitmq-plugins (a broker elsewhere: its operator's job)."""
    if shutil.which("rabbitmq-plugins") is None:
        return None
    listed = _run("rabbitmq-plugins", "list", "--enabled", "--minimal")
    if listed.returncode != 0:
        return None
    return PLUGIN in listed.stdout.split()


def ensure_mqtt_plugin(port=None, say=print):
    """Enable RabbitMQ's MQTT plugin when it is off (listening on 127.0.0.1:`port`). True when it is on."""
    port = port or mqtt_port()
    enabled = plugin_enabled()
    if enabled is None:
        say(f"stratum: cannot tell whether RabbitMQ's MQTT plugin is on (no rabbitmq-plugins here); devices need "
            f"`rabbitmq-plugins enable {PLUGIN}` on the broker")
        return False
    if enabled:
        return True
    say(f"stratum: RabbitMQ's MQTT plugin is off: enabling it (rabbitmq-plugins enable {PLUGIN}), MQTT on "
        f"127.0.0.1:{port}")
    _keep_port_for_next_boot(port, say)
    listener = f'[{{"127.0.0.1", {int(port)}}}]'
    _run("rabbitmqctl", "eval",
         f"application:load({PLUGIN}), application:set_env({PLUGIN}, tcp_listeners, {listener}).")
    result = _run("rabbitmq-plugins", "enable", PLUGIN)
    if result.returncode != 0:
        say(f"stratum: could not enable {PLUGIN}: {(result.stderr or result.stdout).strip()[-500:]}")
        return False
    return True


def _keep_port_for_next_boot(port, say):
    if os.path.exists(ADVANCED_CONFIG):
        with open(ADVANCED_CONFIG) as existing:
            if PLUGIN not in existing.read():
                say(f"stratum: {ADVANCED_CONFIG} exists and sets no MQTT listener: the broker's next boot binds "
                    f"MQTT's default port 1883 (set {PLUGIN}'s tcp_listeners there to keep {port})")
        return
    try:
        with open(ADVANCED_CONFIG, "w") as config:
            config.write("%% written by Stratum (runtime/mqtt.py): RabbitMQ's MQTT plugin listens here, not on\n"
                         "%% 1883, which another MQTT broker may hold\n"
                         f'[{{{PLUGIN}, [{{tcp_listeners, [{{"127.0.0.1", {int(port)}}}]}}]}}].\n')
    except OSError as error:
        say(f"stratum: could not write {ADVANCED_CONFIG} ({error}); the broker's next boot binds MQTT's 1883")


if __name__ == "__main__":
    raise SystemExit(0 if ensure_mqtt_plugin() else 1)
