// ConfigValue and ByteSize are part of the plugin host's API (plugin configs are ConfigValues).
@_exported import ConfigFile
