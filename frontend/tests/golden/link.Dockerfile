FROM scratch AS assets
COPY --parents ./web/./static/**/*.css /
COPY --exclude=*.md --exclude=docs docs-site/ /site/

FROM busybox
COPY --link --from=assets / /srv/
COPY --link --chmod=0644 config.yaml /etc/app/
ADD --checksum=sha256:24454f830cdb571e2c4ad15481119c43b3cafd48dd869a9b2945d1036d1dc68d https://example.com/tool.tar.gz /opt/
ADD vendor.tar.gz /opt/vendor/
ONBUILD RUN echo triggered
