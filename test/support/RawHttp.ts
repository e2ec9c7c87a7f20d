/**
 * One HTTP/1.1 exchange over a raw TCP socket, for tests that must send a path exactly as written (fetch
 * normalizes "//x") or read a response byte for byte (header order, which Response objects hide).
 */
export const rawHttp = (port: number, head: string, body: Uint8Array | string = "") =>
  new Promise<string>((resolve, reject) => {
    let received = ""
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        open: (socket) => {
          socket.write(`${head}\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n`)
          socket.write(body)
        },
        data: (_socket, data) => {
          received += data.toString()
        },
        close: () => resolve(received),
        error: (_socket, error) => reject(error)
      }
    }).catch(reject)
  })
