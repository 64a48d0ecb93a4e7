#!/bin/sh
# `smsreg` inside the image: first on PATH, so the service, the jobs, `docker compose run`
# and `docker compose exec` all come through here, then run the installed command.
#
# docker/compose.yaml passes each optional setting as ${SMSREG_X:-}, which is an empty
# string when the env file leaves it out. An empty string is not "unset" to the app (an
# empty SMSREG_PHONE_KEY_ID names no key; an empty SMSREG_TWILIO_FROM_NUMBER beside a
# Messaging Service SID is "both given"), so empty SMSREG_* variables are removed and
# each such setting keeps its default.
for name in $(env | sed -n 's/^\(SMSREG_[A-Z0-9_]*\)=$/\1/p'); do
    unset "$name"
done
exec /opt/smsreg/bin/smsreg "$@"
