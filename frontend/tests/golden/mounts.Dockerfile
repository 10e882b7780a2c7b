FROM busybox AS deps
RUN --mount=type=cache,target=/root/.cache,sharing=locked \
    --mount=type=bind,source=requirements.txt,target=/tmp/requirements.txt \
    --mount=type=tmpfs,target=/scratch,size=64m \
    --mount=type=secret,id=token,env=TOKEN \
    --mount=type=ssh \
    --network=none \
    echo installing

FROM deps
SHELL ["/bin/sh", "-eu", "-c"]
RUN <<EOF
echo one
echo two
EOF
RUN <<-'SCRIPT'
	#!/bin/sh
	echo "from a script: $HOME"
	SCRIPT
COPY <<CONF /etc/app.conf
name=$HOSTNAME
CONF
RUN --mount=from=deps,source=/etc,target=/mnt/etc ls /mnt/etc
