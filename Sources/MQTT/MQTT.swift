// MQTT client over libmosquitto.
import CMosquitto
