-- One database per fedflow service of the party (each service owns its store). Run once, by the
-- PostgreSQL image's entrypoint, when its data volume is new (docker-compose.postgres.yml).
CREATE DATABASE scheduler;
CREATE DATABASE job_controller;
CREATE DATABASE task_controller;
