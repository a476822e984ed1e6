// Uploads a file to acestash with tus-js-client, as the end-to-end tests
// ask: node client.mjs '<job as JSON>'. Prints one line of JSON: the
// upload's URL, the slug and page URL acestash gave, and what happened.
//
// job: endpoints  tus endpoints (".../files/"); uploads are created on the
//                 first, and every later request goes to the next in turn
//      file       path of the file to send
//      auth       the Authorization header
//      metadata   Upload-Metadata
//      chunkSize  bytes per PATCH (default: the whole file)
//      parallel   partial uploads joined by concatenation (default 1)
//      abortAt    cut the connection once this many bytes are sent, then
//                 resume with a new Upload from the offset the server reports
//      terminateAt  stop once this many bytes are sent and terminate
import fs from 'node:fs'
import { Readable, Transform } from 'node:stream'
import { Upload, DefaultHttpStack } from 'tus-js-client'

const job = JSON.parse(process.argv[2])
const out = { url: '', slug: '', page: '', headOffset: -1, terminated: false, requests: [] }

// rotating sends each request after the first to the next endpoint. With
// cut set, PATCH bodies stop there, as when a connection is lost: the
// bytes after it never leave, and cut.then() is called.
const inner = new DefaultHttpStack()
let turn = 0
let cut = null
const rotating = {
  getName: () => 'rotating',
  createRequest (method, url) {
    const ends = job.endpoints
    const u = new URL(url)
    if (method !== 'POST' && ends.length > 1) {
      u.host = new URL(ends[turn++ % ends.length]).host
    }
    out.requests.push(method + ' ' + u.host)
    const req = inner.createRequest(method, u.toString())
    if (method === 'PATCH' && cut !== null) {
      const send = req.send.bind(req)
      req.send = (body) => send(body instanceof Readable ? body.pipe(stopAt(cut)) : body)
    }
    return req
  }
}

// stopAt passes c.left bytes on, then holds the rest back and calls c.then.
function stopAt (c) {
  return new Transform({
    transform (chunk, enc, done) {
      if (c.left <= 0) return // held back: the stream stalls
      const part = chunk.subarray(0, c.left)
      c.left -= part.length
      this.push(part)
      if (c.left > 0) return done()
      setImmediate(c.then)
    }
  })
}

function options (extra) {
  return {
    endpoint: job.endpoints[0],
    headers: { Authorization: job.auth },
    metadata: job.metadata || {},
    chunkSize: job.chunkSize || Infinity,
    parallelUploads: job.parallel || 1,
    retryDelays: [0, 200, 500, 1000, 2000],
    httpStack: rotating,
    onAfterResponse (req, res) {
      const slug = res.getHeader('Acestash-Slug')
      if (slug) {
        out.slug = slug
        out.page = res.getHeader('Acestash-Url')
      }
    },
    ...extra
  }
}

// run uploads until done, or until stopAt bytes are sent, when it calls
// stop(upload) and resolves.
function run (opts, stopAt, stop) {
  return new Promise((resolve, reject) => {
    let stopped = false
    const upload = new Upload(fs.createReadStream(job.file), options({
      ...opts,
      onError: reject,
      onSuccess: () => resolve(upload),
      onUploadUrlAvailable: () => { out.url = upload.url },
      onProgress (sent) {
        if (stopAt !== undefined && !stopped && sent >= stopAt) {
          stopped = true
          stop(upload).then(() => resolve(upload), reject)
        }
      }
    }))
    upload.start()
  })
}

try {
  if (job.terminateAt !== undefined) {
    await run({}, job.terminateAt, (u) => u.abort(true))
    out.terminated = true
  } else if (job.abortAt !== undefined) {
    const first = await new Promise((resolve, reject) => {
      const upload = new Upload(fs.createReadStream(job.file), options({
        onError: reject,
        onSuccess: () => reject(new Error('the upload ended before it was cut off')),
        onUploadUrlAvailable: () => { out.url = upload.url }
      }))
      cut = { left: job.abortAt, then: () => upload.abort(false).then(() => resolve(upload), reject) }
      upload.start()
    })
    cut = null
    await run({
      uploadUrl: first.url,
      onAfterResponse (req, res) {
        if (req.getMethod() === 'HEAD' && out.headOffset < 0) {
          out.headOffset = Number(res.getHeader('Upload-Offset'))
        }
        options().onAfterResponse(req, res)
      }
    })
  } else {
    await run({})
  }
  console.log(JSON.stringify(out))
} catch (err) {
  console.error(String(err))
  process.exit(1)
}
