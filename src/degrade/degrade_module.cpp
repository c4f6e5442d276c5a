// placeholder so the module links until its first source lands
