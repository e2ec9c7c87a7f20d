import type { SqlClient } from "@effect/sql"
import { Layer } from "effect"
import { MemoryStreamStore } from "../../../layers/Storage/MemoryStreamStore.ts"
import { SqlStreamStore } from "../../../layers/Storage/SqlStreamStore.ts"
import { mysqlAvailable, sqliteFile, sqliteMemory, tempDirectory, throwawayMysql } from "./backends.ts"
import { streamStoreContract } from "./StreamStoreContract.ts"

const dir = tempDirectory("streams")
const mysql = throwawayMysql("streams")
const sqlStreams = <E>(database: Layer.Layer<SqlClient.SqlClient, E>) => SqlStreamStore.pipe(Layer.provide(database))

streamStoreContract({ name: "memory", layer: MemoryStreamStore, persistent: false })
streamStoreContract({ name: "sqlite :memory:", layer: sqlStreams(sqliteMemory()), persistent: false })
streamStoreContract({ name: "sqlite file", layer: sqlStreams(sqliteFile(dir, "streams")), persistent: true })
streamStoreContract({ name: "mysql", layer: sqlStreams(mysql.layer), persistent: true, skip: !mysqlAvailable })
