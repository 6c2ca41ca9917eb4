#ifndef PILOTWATCH_CMOSQUITTO_SHIM_H
#define PILOTWATCH_CMOSQUITTO_SHIM_H
#include <mosquitto.h>
#include <mqtt_protocol.h>
#endif
