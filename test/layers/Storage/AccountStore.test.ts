import { Layer } from "effect"
import { MemoryAccountStore } from "../../../layers/Storage/MemoryAccountStore.ts"
import { SqlAccountStore } from "../../../layers/Storage/SqlAccountStore.ts"
import { accountStoreContract } from "./AccountStoreContract.ts"
import { dumpTables, mysqlAvailable, sqliteFile, sqliteMemory, tempDirectory, throwawayMysql } from "./backends.ts"

const dir = tempDirectory("accounts")
const mysql = throwawayMysql("accounts")
const sqlAccounts = <E>(database: Layer.Layer<import("@effect/sql").SqlClient.SqlClient, E>) =>
  SqlAccountStore.pipe(Layer.provideMerge(database))
const dump = dumpTables("account", "account_details")

accountStoreContract({ name: "memory", layer: MemoryAccountStore, persistent: false })
accountStoreContract({ name: "sqlite :memory:", layer: sqlAccounts(sqliteMemory()), dump, persistent: false })
accountStoreContract({ name: "sqlite file", layer: sqlAccounts(sqliteFile(dir, "accounts")), dump, persistent: true })
accountStoreContract({ name: "mysql", layer: sqlAccounts(mysql.layer), dump, persistent: true, skip: !mysqlAvailable })
