"""How events leave: recording them and driving the queue (`delivery`), the wire formats and
what each answer means (`sinks`), and the way there: proxies, certificates, our HTTP/1.1
client (`transport`)."""
