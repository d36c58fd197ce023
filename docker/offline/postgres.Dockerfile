# Postgres from Debian's packages, answering to the official image's variables
# (POSTGRES_PASSWORD, POSTGRES_DB, PGDATA) for what this stack uses.
ARG BASE
FROM ${BASE}
ENV PGDATA=/var/lib/postgresql/data
RUN mkdir -p "$PGDATA" /var/run/postgresql && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
USER postgres
EXPOSE 5432
ENTRYPOINT ["postgres-entrypoint.sh"]
CMD ["postgres"]
